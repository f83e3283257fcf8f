#!/usr/bin/python3
"""Strict field check of Kubernetes manifests, offline: every key of every built-in object must be
a field of its API type, with the right JSON shape (object, list, scalar). This is what the API
server's strict field validation (kubectl --validate=strict) rejects and what kubectl's client
dry-run cannot check without a cluster. Types come from Debian's python3-kubernetes (the
generated models of the Kubernetes API: openapi_types / attribute_map of each class).

Also checked: MPIJobs (kubeflow.org/v2beta1, as psd's Kubernetes launcher renders them): spec keys
against the MPI Operator's v2beta1 MPIJobSpec, pod templates as PodTemplateSpec. Other custom resources (ServiceMonitor, PrometheusRule) are left to
the JSON-schema check (validate-k8s-schemas.mjs).

Usage: check-k8s-fields.py FILE...   exit 0 when clean, 1 with one line per problem.
"""
import re
import sys

import kubernetes.client as k8s
import yaml

KINDS = {  # (apiVersion, kind) -> model class
    ("v1", "ConfigMap"): k8s.V1ConfigMap, ("v1", "Secret"): k8s.V1Secret,
    ("v1", "Service"): k8s.V1Service, ("v1", "ServiceAccount"): k8s.V1ServiceAccount,
    ("v1", "PersistentVolumeClaim"): k8s.V1PersistentVolumeClaim, ("v1", "Pod"): k8s.V1Pod,
    ("apps/v1", "StatefulSet"): k8s.V1StatefulSet, ("apps/v1", "Deployment"): k8s.V1Deployment,
    ("batch/v1", "Job"): k8s.V1Job,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.V1Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.V1RoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.V1NetworkPolicy,
}
# kubeflow.org/v2beta1 MPIJobSpec, ReplicaSpec and RunPolicy fields (MPI Operator v0.4+).
MPIJOB_SPEC = {"slotsPerWorker", "runLauncherAsWorker", "runPolicy", "mpiReplicaSpecs",
               "sshAuthMountPath", "launcherCreationPolicy", "mpiImplementation"}
MPI_REPLICA = {"replicas", "template", "restartPolicy"}
RUN_POLICY = {"cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds",
              "backoffLimit", "schedulingPolicy", "suspend", "managedBy"}
problems = []


def check(value, type_name, path):
    """Walks value against a python3-kubernetes type name ('V1PodSpec', 'list[V1Container]',
    'dict(str, str)', 'str', 'int', 'object', ...)."""
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for i, v in enumerate(value):
            check(v, m.group(1), f"{path}[{i}]")
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m and re.search(r"\.(requests|limits|capacity|hard)$", path):
        m = None
        type_name = "quantity"  # resource.Quantity: "2Gi", "500m" or a plain number
    if m:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map")
            return
        for k, v in value.items():
            check(v, m.group(1), f"{path}.{k}")
        return
    if type_name in ("str", "datetime", "date"):
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
        return
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {value!r}")
        return
    if type_name == "bool":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true/false, got {value!r}")
        return
    if type_name == "quantity":
        if not isinstance(value, dict) or not all(
                isinstance(q, (str, int, float)) and not isinstance(q, bool)
                for q in value.values()):
            problems.append(f"{path}: expected a map of quantities")
        return
    if type_name in ("object", "float"):  # int-or-string, quantities, free-form
        return
    cls = getattr(k8s, type_name, None)
    if cls is None:
        problems.append(f"{path}: unknown model type {type_name}")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({type_name}), got {value!r}")
        return
    fields = {json_key: cls.openapi_types[py] for py, json_key in cls.attribute_map.items()}
    for key, v in value.items():
        if key not in fields:
            problems.append(f"{path}: unknown field {key!r} in {type_name}")
        elif v is not None:
            check(v, fields[key], f"{path}.{key}")


def check_mpijob(obj, where):
    spec = obj.get("spec", {})
    for key in spec:
        if key not in MPIJOB_SPEC:
            problems.append(f"{where}.spec: unknown field {key!r} in MPIJobSpec")
    for key in spec.get("runPolicy", {}):
        if key not in RUN_POLICY:
            problems.append(f"{where}.spec.runPolicy: unknown field {key!r}")
    replicas = spec.get("mpiReplicaSpecs", {})
    if set(replicas) - {"Launcher", "Worker"} or "Launcher" not in replicas:
        problems.append(f"{where}.spec.mpiReplicaSpecs: needs Launcher (and Worker) only")
    for role, rs in replicas.items():
        for key in rs:
            if key not in MPI_REPLICA:
                problems.append(f"{where}.spec.mpiReplicaSpecs.{role}: unknown field {key!r}")
        check(rs.get("template", {}), "V1PodTemplateSpec",
              f"{where}.spec.mpiReplicaSpecs.{role}.template")


def main(paths):
    checked = 0
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for obj in docs:
            key = (obj.get("apiVersion"), obj.get("kind"))
            where = f"{path}: {key[1]}/{obj.get('metadata', {}).get('name')}"
            if key in KINDS:
                cls = KINDS[key]
                check(obj, cls.__name__, where)
                checked += 1
            elif key == ("kubeflow.org/v2beta1", "MPIJob"):
                check_mpijob(obj, where)
                checked += 1
    for p in problems:
        print(p)
    print(f"check-k8s-fields: {checked} objects, {len(problems)} problem(s)")
    return 1 if problems or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

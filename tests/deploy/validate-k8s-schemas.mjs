// JSON-schema validation of Kubernetes manifests, offline, with the schemas of the Kubernetes
// OpenAPI (npm kubernetes-models) and of the Prometheus Operator CRDs
// (@kubernetes-models/prometheus-operator): required fields, types, enums, formats. MPIJob has no
// published model; its pod templates are validated as PodTemplateSpec. (Unknown fields are not schema errors in Kubernetes'
// OpenAPI; check-k8s-fields.py catches those.)
//
// Usage: node validate-k8s-schemas.mjs NODE_MODULES_DIR FILE...
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const load = (rel) => import(pathToFileURL(path.join(modules, rel)).href);
const yaml = (await load("js-yaml/index.js")).default;

function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "monitoring.coreos.com") {
    return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}.js`;
  }
  if (group === "kubeflow.org") return null;
  return `kubernetes-models/${group ? group + "/" : ""}${version}/${kind}.js`;
}

let checked = 0;
const problems = [];
async function validate(rel, exportName, obj, where) {
  const file = path.join(modules, rel);
  if (!fs.existsSync(file)) {
    problems.push(`${where}: no schema for ${rel}`);
    return;
  }
  const Model = (await load(rel))[exportName];
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${where}: ${e.message.split("\n")[0]}`);
  }
  checked++;
}

for (const f of files) {
  for (const obj of yaml.loadAll(fs.readFileSync(f, "utf8"))) {
    if (!obj) continue;
    const where = `${f}: ${obj.kind}/${obj.metadata?.name}`;
    if (!obj.apiVersion || !obj.kind) {
      problems.push(`${where}: missing apiVersion or kind`);
      continue;
    }
    const rel = modelPath(obj.apiVersion, obj.kind);
    if (rel) await validate(rel, obj.kind, obj, where);
    if (obj.kind === "MPIJob") {
      for (const [role, rs] of Object.entries(obj.spec?.mpiReplicaSpecs ?? {})) {
        await validate("kubernetes-models/v1/PodTemplateSpec.js", "PodTemplateSpec",
                       rs.template, `${where} ${role} template`);
      }
    }
  }
}
for (const p of problems) console.log(p);
console.log(`validate-k8s-schemas: ${checked} objects, ${problems.length} problem(s)`);
process.exit(problems.length || !checked ? 1 : 0);

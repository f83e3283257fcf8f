{{/* Names and labels shared by every template. */}}

{{- define "proxsparse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "proxsparse.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: coordinator
{{- end -}}

{{- define "proxsparse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "proxsparse.coordinatorImage" -}}
{{- printf "%s:%s" .Values.coordinator.image.repository (default .Chart.AppVersion .Values.coordinator.image.tag) -}}
{{- end -}}

{{- define "proxsparse.workerImage" -}}
{{- printf "%s:%s" .Values.launcher.worker.image.repository (default .Chart.AppVersion .Values.launcher.worker.image.tag) -}}
{{- end -}}

{{- define "proxsparse.authSecret" -}}
{{- default (printf "%s-auth" (include "proxsparse.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "proxsparse.artifactsClaim" -}}
{{- default (printf "%s-artifacts" (include "proxsparse.fullname" .)) .Values.artifacts.existingClaim -}}
{{- end -}}

{{- define "proxsparse.workerServiceAccount" -}}
{{- default (printf "%s-worker" (include "proxsparse.fullname" .)) .Values.launcher.workerServiceAccount.name -}}
{{- end -}}

{{- define "proxsparse.grpcAddress" -}}
{{- printf "%s.%s.svc:%v" (include "proxsparse.fullname" .) .Release.Namespace .Values.coordinator.grpcPort -}}
{{- end -}}

{{/*
The pod template of one worker pod (one MPI rank per GPU). psd's Kubernetes launcher reads it from
the launcher ConfigMap and fills in the job: ranks, command, job id. Kept here so scheduling
(GPUs, node selection, tolerations, volumes) is the operator's choice, not the code's.
*/}}
{{- define "proxsparse.workerPodTemplate" -}}
metadata:
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: worker
spec:
  serviceAccountName: {{ include "proxsparse.workerServiceAccount" . }}
  automountServiceAccountToken: false
  {{- with .Values.launcher.worker.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.coordinator.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: {{ .Values.coordinator.runAsUser }}
    runAsGroup: {{ .Values.coordinator.fsGroup }}
    fsGroup: {{ .Values.coordinator.fsGroup }}
    seccompProfile: {type: RuntimeDefault}
  {{- with .Values.launcher.worker.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.launcher.worker.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: worker
      image: {{ include "proxsparse.workerImage" . }}
      imagePullPolicy: {{ .Values.launcher.worker.image.pullPolicy }}
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
      env:
        - name: PS_COORDINATOR
          value: {{ include "proxsparse.grpcAddress" . }}
        {{- if .Values.auth.enabled }}
        - name: PS_TOKEN_FILE
          value: /etc/proxsparse/auth/token
        {{- end }}
        {{- with .Values.launcher.worker.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        requests:
          {{- with .Values.launcher.worker.resources.requests }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
          nvidia.com/gpu: {{ .Values.launcher.worker.gpusPerPod }}
        limits:
          {{- with .Values.launcher.worker.resources.limits }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
          nvidia.com/gpu: {{ .Values.launcher.worker.gpusPerPod }}
      volumeMounts:
        - {name: artifacts, mountPath: {{ .Values.artifacts.mountPath }}}
        {{- if .Values.artifacts.models.existingClaim }}
        - {name: models, mountPath: {{ .Values.artifacts.models.mountPath }}, readOnly: true}
        {{- end }}
        - {name: shm, mountPath: /dev/shm}
        {{- if .Values.auth.enabled }}
        - {name: auth, mountPath: /etc/proxsparse/auth, readOnly: true}
        {{- end }}
  volumes:
    - name: artifacts
      persistentVolumeClaim: {claimName: {{ include "proxsparse.artifactsClaim" . }}}
    {{- if .Values.artifacts.models.existingClaim }}
    - name: models
      persistentVolumeClaim: {claimName: {{ .Values.artifacts.models.existingClaim }}, readOnly: true}
    {{- end }}
    - name: shm
      emptyDir: {medium: Memory, sizeLimit: {{ .Values.launcher.worker.shmSize }}}
    {{- if .Values.auth.enabled }}
    - name: auth
      secret: {secretName: {{ include "proxsparse.authSecret" . }}, defaultMode: 0440}
    {{- end }}
{{- end -}}

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

{{/* Where psd keeps the files workers must read too (token, CA): on the shared data volume. */}}
{{- define "proxsparse.sharedSecretsDir" -}}
{{- printf "%s/.psd" .Values.artifacts.mountPath -}}
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

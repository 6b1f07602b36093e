{{/* Names: <release>-replate unless overridden, cut to the 63 characters Kubernetes allows. */}}
{{- define "replate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "replate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <fullname>-<component>, for each workload's objects. Call with (list $ "gateway"). */}}
{{- define "replate.component" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "replate.fullname" $root | trunc 50 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "replate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "replate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component. Call with (list $ "gateway"). */}}
{{- define "replate.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "replate.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "replate.componentLabels" -}}
{{ include "replate.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* repository:tag, the tag defaulting to the chart's appVersion. Call with (list $ .Values.gateway.image). */}}
{{- define "replate.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{- define "replate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "replate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the chart generates (admin key, URL signing secret, bundled PostgreSQL's password). */}}
{{- define "replate.generatedSecret" -}}
{{- include "replate.component" (list . "generated") }}
{{- end }}

{{/* Where REPLATE_DATABASE_URL comes from: the bundled PostgreSQL's generated URL, or the operator's Secret. */}}
{{- define "replate.databaseUrlEnv" -}}
- name: REPLATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- if .Values.postgresql.enabled }}
      name: {{ include "replate.generatedSecret" . }}
      key: database-url
      {{- else }}
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
      {{- end }}
{{- end }}

{{- /* The HMAC key API keys are stored under: one for the migrations Job (which registers and re-hashes keys) and
every gateway replica, or each would make up its own and refuse the others' keys. */}}
{{- define "replate.apiKeySecretEnv" -}}
- name: REPLATE_API_KEY_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "replate.generatedSecret" . }}
      key: api-key-secret
{{- end }}

{{- define "replate.adminKeySecretName" -}}
{{- default (include "replate.generatedSecret" .) .Values.adminKey.existingSecret }}
{{- end }}

{{/* host:port of Triton's gRPC endpoint for the gateway: this release's Triton unless an external one is named. */}}
{{- define "replate.tritonUrl" -}}
{{- if .Values.gateway.tritonUrl }}
{{- .Values.gateway.tritonUrl }}
{{- else }}
{{- printf "%s:%d" (include "replate.component" (list . "triton")) (int .Values.triton.ports.grpc) }}
{{- end }}
{{- end }}

{{/* The hardened container securityContext every container of the chart gets. */}}
{{- define "replate.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Spread a component's pods over zones and nodes. Call with (list $ "gateway" .Values.gateway.topologySpread). */}}
{{- define "replate.topologySpread" -}}
{{- $root := index . 0 -}}
{{- $spread := index . 2 -}}
topologySpreadConstraints:
  {{- range $spread.topologyKeys }}
  - maxSkew: {{ $spread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $spread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "replate.selectorLabels" (list $root (index $ 1)) | nindent 8 }}
  {{- end }}
{{- end }}

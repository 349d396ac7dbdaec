{{/* Names, labels and the pieces every pod shares. */}}

{{- define "videojobs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videojobs.fullname" -}}
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

{{/* Labels of every resource; pass (dict "root" $ "component" "operator"). */}}
{{- define "videojobs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "videojobs.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: videojobs
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "videojobs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "videojobs.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "videojobs.operator.serviceAccountName" -}}
{{- default (printf "%s-operator" (include "videojobs.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "videojobs.api.serviceAccountName" -}}
{{- default (printf "%s-api" (include "videojobs.fullname" .)) .Values.api.serviceAccount.name }}
{{- end }}

{{- define "videojobs.runner.serviceAccountName" -}}
{{- default (printf "%s-runner" (include "videojobs.fullname" .)) .Values.runner.serviceAccount.name }}
{{- end }}

{{- define "videojobs.render.serviceAccountName" -}}
{{- default (printf "%s-render" (include "videojobs.fullname" .)) .Values.runner.render.serviceAccount.name }}
{{- end }}

{{/*
The namespaces where VideoJobs run, as a JSON list: the release namespace, then operator.watchNamespaces.
Each gets what its runner Jobs need: the pipeline ConfigMap, the runner and render NetworkPolicies,
the render ServiceAccount, the shared runner identity, and the operator's Role.
*/}}
{{- define "videojobs.runNamespaces" -}}
{{- if and .Values.operator.watchAllNamespaces .Values.operator.watchNamespaces }}
{{- fail "operator.watchNamespaces and operator.watchAllNamespaces exclude each other: set one" }}
{{- end }}
{{- prepend .Values.operator.watchNamespaces .Release.Namespace | uniq | toJson }}
{{- end }}

{{- define "videojobs.configMapName" -}}
{{- printf "%s-pipeline" (include "videojobs.fullname" .) }}
{{- end }}

{{/* image reference; pass (dict "root" $ "image" .Values.images.control) */}}
{{- define "videojobs.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* The restricted Pod Security Standard: pod level (the images run as uid 1000). */}}
{{- define "videojobs.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The restricted Pod Security Standard: container level. */}}
{{- define "videojobs.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* nodeSelector, tolerations, affinity, priorityClassName and pull secrets; pass (dict "root" $ "pod" .Values.api) */}}
{{- define "videojobs.podPlacement" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with .pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Egress to DNS (a NetworkPolicyEgressRule list item). */}}
{{- define "videojobs.egress.dns" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.dns.podSelector | nindent 8 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/* Egress to DNS and the Kubernetes API server (NetworkPolicyEgressRule list items). */}}
{{- define "videojobs.egress.dnsAndApiServer" -}}
{{ include "videojobs.egress.dns" . }}
- ports:
    {{- range .Values.networkPolicy.apiServer.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with .Values.networkPolicy.apiServer.cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}

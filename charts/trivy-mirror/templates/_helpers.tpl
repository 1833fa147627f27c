{{/* Names and labels, as `helm create` makes them. */}}
{{- define "trivy-mirror.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trivy-mirror.fullname" -}}
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

{{- define "trivy-mirror.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trivy-mirror.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trivy-mirror.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "trivy-mirror.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "trivy-mirror.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trivy-mirror.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trivy-mirror.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The PVC a serve pod uses. */}}
{{- define "trivy-mirror.claimName" -}}
{{- default (printf "%s-data" (include "trivy-mirror.fullname" .)) .Values.serve.persistence.existingClaim }}
{{- end }}

{{/* The bundle as a source: oci-archive:FILE, or oci:DIR/ for a layout directory. */}}
{{- define "trivy-mirror.bundleSource" -}}
{{- if hasSuffix "/" .Values.bundle.file -}}
oci:/bundle/{{ trimSuffix "/" .Values.bundle.file }}
{{- else -}}
oci-archive:/bundle/{{ .Values.bundle.file }}
{{- end }}
{{- end }}

{{/*
The sync flags every mode shares, one YAML list item per line. `--source` comes from
mirror.source, else from the bundle in import mode (and in serve mode when a bundle volume is set).
*/}}
{{- define "trivy-mirror.syncArgs" -}}
{{- $m := .Values.mirror }}
{{- if $m.source }}
- --source
- {{ join "," $m.source | quote }}
{{- else if or (eq .Values.mode "import") .Values.bundle.volume }}
- --source
- {{ include "trivy-mirror.bundleSource" . | quote }}
{{- end }}
{{- with $m.only }}
- --only
- {{ join "," . | quote }}
{{- end }}
{{- if ne $m.namespace "aquasecurity" }}
- --namespace
- {{ $m.namespace | quote }}
{{- end }}
{{- with $m.baseUrl }}
- --base-url
- {{ . | quote }}
{{- end }}
{{- if $m.snapshotTags }}
- --snapshot-tags
{{- end }}
{{- if $m.prune.enabled }}
- --prune
- --keep
- {{ $m.prune.keep | quote }}
- --grace
- {{ $m.prune.grace | quote }}
{{- end }}
- --retries
- {{ $m.retries | quote }}
{{- if $m.insecureSource }}
- --insecure-source
{{- end }}
{{- range $m.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Environment every mode shares: logs, HOME, proxies, CA bundle, docker config, cloud settings. */}}
{{- define "trivy-mirror.env" -}}
- name: TRIVY_MIRROR_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
# Nothing may be written under / ; anything that looks for a home directory gets the emptyDir.
- name: HOME
  value: /tmp
{{- with .Values.proxy }}
{{- if .httpsProxy }}
- name: HTTPS_PROXY
  value: {{ .httpsProxy | quote }}
{{- end }}
{{- if .httpProxy }}
- name: HTTP_PROXY
  value: {{ .httpProxy | quote }}
{{- end }}
{{- if and (or .httpsProxy .httpProxy) .noProxy }}
- name: NO_PROXY
  value: {{ .noProxy | quote }}
{{- end }}
{{- end }}
{{- if .Values.caBundle.configMapName }}
- name: SSL_CERT_FILE
  value: {{ printf "/etc/trivy-mirror/ca/%s" .Values.caBundle.key | quote }}
{{- end }}
{{- if .Values.registryCredentials.dockerConfigSecret }}
- name: DOCKER_CONFIG
  value: /etc/trivy-mirror/docker
{{- end }}
{{- if ne .Values.mode "serve" }}
{{- with .Values.publish.aws.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.publish.azure.storageAccount }}
- name: AZURE_STORAGE_ACCOUNT_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every mode shares (the serve data volume and TLS/auth are added by the Deployment). */}}
{{- define "trivy-mirror.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmp.sizeLimit }}
{{- if .Values.caBundle.configMapName }}
- name: ca-bundle
  configMap:
    name: {{ .Values.caBundle.configMapName }}
    items:
      - key: {{ .Values.caBundle.key }}
        path: {{ .Values.caBundle.key }}
{{- end }}
{{- if .Values.registryCredentials.dockerConfigSecret }}
- name: docker-config
  secret:
    secretName: {{ .Values.registryCredentials.dockerConfigSecret }}
    items:
      - key: .dockerconfigjson
        path: config.json
{{- end }}
{{- if .Values.bundle.volume }}
- name: bundle
  {{- toYaml .Values.bundle.volume | nindent 2 }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "trivy-mirror.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.caBundle.configMapName }}
- name: ca-bundle
  mountPath: /etc/trivy-mirror/ca
  readOnly: true
{{- end }}
{{- if .Values.registryCredentials.dockerConfigSecret }}
- name: docker-config
  mountPath: /etc/trivy-mirror/docker
  readOnly: true
{{- end }}
{{- if .Values.bundle.volume }}
- name: bundle
  mountPath: /bundle
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings every workload shares. */}}
{{- define "trivy-mirror.podSpecCommon" -}}
serviceAccountName: {{ include "trivy-mirror.serviceAccountName" . }}
# The mirror never talks to the API server; no token in the pod. (Workload identity webhooks
# project their own audience-bound tokens and do not need this one.)
automountServiceAccountToken: false
# No <SERVICE>_PORT variables from every Service in the namespace.
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod labels: the selector, the user's, and Azure Workload Identity's opt-in label. */}}
{{- define "trivy-mirror.podLabels" -}}
{{ include "trivy-mirror.selectorLabels" . }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- if .Values.workloadIdentity.azure.clientId }}
azure.workload.identity/use: "true"
{{- end }}
{{- end }}

{{/*
The publish/import pod template, shared by the CronJob and the install-time hook Job.
*/}}
{{- define "trivy-mirror.syncPodTemplate" -}}
metadata:
  labels:
    {{- include "trivy-mirror.podLabels" . | nindent 4 }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- include "trivy-mirror.podSpecCommon" . | nindent 2 }}
  restartPolicy: Never
  containers:
    - name: sync
      image: {{ include "trivy-mirror.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - sync
        - --to
        - {{ join "," .Values.publish.to | quote }}
        {{- include "trivy-mirror.syncArgs" . | trim | nindent 8 }}
      env:
        {{- include "trivy-mirror.env" . | trim | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        {{- include "trivy-mirror.volumeMounts" . | trim | nindent 8 }}
  volumes:
    {{- include "trivy-mirror.volumes" . | trim | nindent 4 }}
{{- end }}

{{/*
Where scanners reach the mirror, for NOTES: a dict with host (host[:port]), prefix (repository path
before trivy-db) and insecure (plain http or a certificate Trivy would not verify by default).
*/}}
{{- define "trivy-mirror.endpoint" -}}
{{- $ns := .Values.mirror.namespace }}
{{- if eq .Values.mode "serve" }}
{{- if .Values.ingress.enabled }}
{{- $tls := not (empty .Values.ingress.tls.secretName) }}
{{- dict "host" .Values.ingress.host "prefix" $ns "insecure" (not $tls) "scheme" (ternary "https" "http" $tls) | toJson }}
{{- else if .Values.httpRoute.enabled }}
{{- dict "host" (first .Values.httpRoute.hostnames) "prefix" $ns "insecure" (not .Values.httpRoute.https) "scheme" (ternary "https" "http" .Values.httpRoute.https) | toJson }}
{{- else }}
{{- $host := printf "%s.%s.svc.cluster.local:%v" (include "trivy-mirror.fullname" .) .Release.Namespace .Values.service.port }}
{{- dict "host" $host "prefix" $ns "insecure" (not .Values.serve.tls.enabled) "scheme" (ternary "https" "http" .Values.serve.tls.enabled) "internal" true | toJson }}
{{- end }}
{{- else }}
{{- $oci := "" }}
{{- range .Values.publish.to }}{{ if and (not $oci) (hasPrefix "oci://" .) }}{{ $oci = trimPrefix "oci://" . }}{{ end }}{{ end }}
{{- if .Values.publish.publicHost }}
{{- dict "host" .Values.publish.publicHost "prefix" $ns "insecure" false "scheme" "https" | toJson }}
{{- else if $oci }}
{{- $parts := splitn "/" 2 $oci }}
{{- $prefix := $ns }}
{{- if $parts._1 }}{{ $prefix = printf "%s/%s" (trimSuffix "/" $parts._1) $ns }}{{ end }}
{{- dict "host" $parts._0 "prefix" $prefix "insecure" false "scheme" "https" | toJson }}
{{- else }}
{{- dict "host" "MIRROR-HOST" "prefix" $ns "insecure" false "scheme" "https" "placeholder" true | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name, truncated to a DNS label. */}}
{{- define "fluxqueue.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: <release>-<chart>, or just <release> when it already contains the chart name. */}}
{{- define "fluxqueue.fullname" -}}
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

{{- define "fluxqueue.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object (recommended labels, kubernetes.io docs "Recommended Labels"). */}}
{{- define "fluxqueue.labels" -}}
helm.sh/chart: {{ include "fluxqueue.chart" . }}
app.kubernetes.io/name: {{ include "fluxqueue.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fluxqueue
{{- end }}

{{/* Selector labels of one component: include "fluxqueue.selectorLabels" (dict "ctx" $ "component" "controller") */}}
{{- define "fluxqueue.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fluxqueue.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component. */}}
{{- define "fluxqueue.componentLabels" -}}
{{ include "fluxqueue.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "fluxqueue.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fluxqueue.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fluxqueue.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Names other objects refer to. */}}
{{- define "fluxqueue.controllerName" -}}{{ include "fluxqueue.fullname" . }}-controller{{- end }}
{{- define "fluxqueue.webhookServiceName" -}}{{ include "fluxqueue.fullname" . }}-webhook{{- end }}
{{- define "fluxqueue.webhookConfigurationName" -}}{{ include "fluxqueue.fullname" . }}-webhook{{- end }}
{{- define "fluxqueue.metricsServiceName" -}}{{ include "fluxqueue.fullname" . }}-metrics{{- end }}
{{- define "fluxqueue.fluxionName" -}}{{ include "fluxqueue.fullname" . }}-fluxion{{- end }}
{{- define "fluxqueue.postgresqlName" -}}{{ include "fluxqueue.fullname" . }}-postgresql{{- end }}
{{- define "fluxqueue.certSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "fluxqueue.fullname" .)) .Values.webhook.certificates.secretName }}
{{- end }}
{{- define "fluxqueue.leaseName" -}}
{{- default (include "fluxqueue.controllerName" .) .Values.controller.leaderElection.leaseName }}
{{- end }}

{{/* Where the controller reaches Fluxion. */}}
{{- define "fluxqueue.fluxionAddress" -}}
{{- if eq .Values.fluxion.mode "sidecar" }}
{{- printf "127.0.0.1:%d" (int .Values.fluxion.port) }}
{{- else }}
{{- printf "%s.%s.svc:%d" (include "fluxqueue.fluxionName" .) .Release.Namespace (int .Values.fluxion.port) }}
{{- end }}
{{- end }}

{{/* The Secret and key holding the database DSN. */}}
{{- define "fluxqueue.databaseSecretName" -}}
{{- if .Values.postgresql.enabled }}
{{- default (include "fluxqueue.postgresqlName" .) .Values.postgresql.auth.existingSecret }}
{{- else }}
{{- required "externalDatabase.existingSecret is required when postgresql.enabled is false" .Values.externalDatabase.existingSecret }}
{{- end }}
{{- end }}
{{- define "fluxqueue.databaseSecretKey" -}}
{{- if .Values.postgresql.enabled }}dsn{{ else }}{{ .Values.externalDatabase.existingSecretKey }}{{ end }}
{{- end }}

{{/* The container securityContext every fluxqueue container shares. */}}
{{- define "fluxqueue.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* Environment common to fluxqueue containers. */}}
{{- define "fluxqueue.commonEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: FLUXQUEUE_DSN
  valueFrom:
    secretKeyRef:
      name: {{ include "fluxqueue.databaseSecretName" . }}
      key: {{ include "fluxqueue.databaseSecretKey" . }}
{{- end }}

{{/* The Fluxion container, shared by the sidecar and the Deployment (its args: also fluxqueue/sim/chartrender.py). */}}
{{- define "fluxqueue.fluxionContainer" -}}
name: fluxion
image: {{ include "fluxqueue.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args:
  - --log-level={{ .Values.logLevel }}
  - --log-format={{ .Values.logFormat }}
  - fluxion
  - serve
  - --host={{ if eq .Values.fluxion.mode "sidecar" }}127.0.0.1{{ else }}0.0.0.0{{ end }}
  - --port={{ .Values.fluxion.port }}
  - --policy={{ .Values.fluxion.policy }}
  {{- range .Values.fluxion.extraArgs }}
  - {{ . | quote }}
  {{- end }}
ports:
  - name: fluxion
    containerPort: {{ .Values.fluxion.port }}
    protocol: TCP
{{- if ne .Values.fluxion.mode "sidecar" }}
readinessProbe:
  tcpSocket:
    port: fluxion
  periodSeconds: 5
livenessProbe:
  tcpSocket:
    port: fluxion
  periodSeconds: 10
  failureThreshold: 6
{{- end }}
startupProbe:
  {{- if eq .Values.fluxion.mode "sidecar" }}
  # The sidecar listens on 127.0.0.1 only (nothing outside the pod can reach it), and kubelet probes dial
  # the pod IP; so the probe connects from inside the container.
  exec:
    command:
      - python
      - -c
      - "import socket; socket.create_connection(('127.0.0.1', {{ .Values.fluxion.port }}), 1).close()"
  {{- else }}
  tcpSocket:
    port: fluxion
  {{- end }}
  periodSeconds: 1
  failureThreshold: 60
resources:
  {{- toYaml .Values.fluxion.resources | nindent 2 }}
securityContext:
  {{- include "fluxqueue.containerSecurityContext" . | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

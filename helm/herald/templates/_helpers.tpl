{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release name + chart name unless one contains the other. */}}
{{- define "herald.fullname" -}}
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

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herald
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "herald.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Name of the Secret holding herald.toml, and its key. */}}
{{- define "herald.configSecretName" -}}
{{- default (printf "%s-config" (include "herald.fullname" .)) .Values.config.existingSecret }}
{{- end }}

{{- define "herald.configSecretKey" -}}
{{- if .Values.config.existingSecret }}{{ .Values.config.existingSecretKey }}{{ else }}herald.toml{{ end }}
{{- end }}

{{/* Whether herald's single app comes from PUSHER_APP_* env (no [[apps]] in the file). */}}
{{- define "herald.appFromEnv" -}}
{{- if and (not .Values.config.existingSecret) (empty .Values.apps) }}true{{ end }}
{{- end }}

{{- define "herald.appSecretName" -}}
{{- default (printf "%s-app" (include "herald.fullname" .)) .Values.appCredentials.existingSecret }}
{{- end }}

{{/* URL path prefix ([server] path_prefix) in front of every herald path; with
config.existingSecret, set config.server.path_prefix to the same value for the probes. */}}
{{- define "herald.pathPrefix" -}}
{{- .Values.config.server.path_prefix | default "" }}
{{- end }}

{{/* The app key the helm test connects with, or "" when unknown. */}}
{{- define "herald.testAppKey" -}}
{{- if .Values.tests.appKey }}{{ .Values.tests.appKey }}
{{- else if .Values.config.existingSecret }}
{{- else if .Values.apps }}{{ (first .Values.apps).key }}
{{- else if not .Values.appCredentials.existingSecret }}{{ .Values.appCredentials.key }}
{{- end }}
{{- end }}

{{/* herald's own hard shutdown limit ([server] shutdown_grace_seconds): drain window + margin. */}}
{{- define "herald.shutdownGraceSeconds" -}}
{{- add .Values.drain.windowSeconds .Values.drain.marginSeconds }}
{{- end }}

{{/* Pod grace: preStop sleep + herald's shutdown grace + 5 s, so herald exits by itself
before the kubelet's SIGKILL. */}}
{{- define "herald.terminationGracePeriodSeconds" -}}
{{- add .Values.drain.preStopSleepSeconds (include "herald.shutdownGraceSeconds" . | int) 5 }}
{{- end }}

{{/*
One TOML value. Helm hands numbers from YAML over as float64, which Helm's own toToml prints
as 6001.0 (a TOML float that herald's integer fields reject), so the scalars are written here:
integers without a fraction, strings as JSON strings (valid TOML basic strings), lists as
arrays, maps as inline tables.
*/}}
{{- define "herald.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{ toJson $v }}
{{- else if kindIs "bool" $v -}}
{{ ternary "true" "false" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if eq (float64 (int64 $v)) (float64 $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) -}}
{{ $v }}
{{- else if kindIs "slice" $v -}}
[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "herald.tomlValue" $e }}{{ end }}]
{{- else if kindIs "map" $v -}}
{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ toJson $k }} = {{ include "herald.tomlValue" (index $v $k) }}{{ end }} }
{{- else if kindIs "invalid" $v -}}
{{ fail "herald.toml: null values are not allowed (leave the key out for herald's default)" }}
{{- else -}}
{{ fail (printf "herald.toml: cannot render a value of kind %s" (kindOf $v)) }}
{{- end -}}
{{- end }}

{{/* `key = value` lines of a map, sorted, skipping the keys listed in .skip. */}}
{{- define "herald.tomlPairs" -}}
{{- $skip := .skip | default list -}}
{{- range $k := keys .map | sortAlpha }}
{{- if not (has $k $skip) }}
{{ $k }} = {{ include "herald.tomlValue" (index $.map $k) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The complete herald.toml rendered from the values. */}}
{{- define "herald.configToml" -}}
# herald.toml rendered by the herald Helm chart (release {{ .Release.Name }}).
# Validate a copy with: herald config check --config herald.toml

[server]
host = "0.0.0.0"
port = {{ int64 .Values.containerPort }}
drain_window_seconds = {{ int64 .Values.drain.windowSeconds }}
shutdown_grace_seconds = {{ include "herald.shutdownGraceSeconds" . }}
{{- include "herald.tomlPairs" (dict "map" .Values.config.server "skip" (list "host" "port" "drain_window_seconds" "shutdown_grace_seconds")) }}

[metrics]
enabled = {{ ternary "true" "false" .Values.metrics.enabled }}
port = {{ int64 .Values.metrics.port }}

[webhooks]
{{- include "herald.tomlPairs" (dict "map" .Values.config.webhooks) }}
{{- if .Values.redis.enabled }}

[adapter]
driver = "redis"
{{- if and .Values.redis.url (not .Values.redis.existingSecret) }}
url = {{ toJson .Values.redis.url }}
{{- end }}
{{- include "herald.tomlPairs" (dict "map" .Values.redis.options "skip" (list "driver" "url")) }}
{{- end }}
{{- if .Values.nats.enabled }}

[adapter]
driver = "nats"
{{- if and .Values.nats.url (not .Values.nats.existingSecret) }}
url = {{ toJson .Values.nats.url }}
{{- end }}
{{- include "herald.tomlPairs" (dict "map" .Values.nats.options "skip" (list "driver" "url")) }}
{{- end }}
{{- range $app := .Values.apps }}

[[apps]]
{{- include "herald.tomlPairs" (dict "map" $app "skip" (list "webhooks")) }}
{{- range $hook := $app.webhooks | default list }}

[[apps.webhooks]]
{{- include "herald.tomlPairs" (dict "map" $hook) }}
{{- end }}
{{- end }}
{{- with .Values.config.extraToml }}

# config.extraToml
{{ . }}
{{- end }}
{{ end }}

{{/* Checks across values that the schema cannot express; rendering fails with the reason. */}}
{{- define "herald.validate" -}}
{{- if and .Values.redis.enabled (not .Values.config.existingSecret) (not .Values.redis.url) (not .Values.redis.existingSecret) }}
{{- fail "redis.enabled needs redis.url or redis.existingSecret" }}
{{- end }}
{{- if and .Values.redis.url .Values.redis.existingSecret }}
{{- fail "set only one of redis.url and redis.existingSecret" }}
{{- end }}
{{- if and .Values.redis.enabled .Values.nats.enabled }}
{{- fail "set only one of redis.enabled and nats.enabled" }}
{{- end }}
{{- if and .Values.nats.enabled (not .Values.config.existingSecret) (not .Values.nats.url) (not .Values.nats.existingSecret) }}
{{- fail "nats.enabled needs nats.url or nats.existingSecret" }}
{{- end }}
{{- if and .Values.nats.url .Values.nats.existingSecret }}
{{- fail "set only one of nats.url and nats.existingSecret" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be >= autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.containerPort)) }}
{{- fail "metrics.port must differ from containerPort" }}
{{- end }}
{{- $ids := list }}{{- $keys := list }}
{{- range .Values.apps }}
{{- if has .id $ids }}{{ fail (printf "apps: duplicate id %q" .id) }}{{ end }}
{{- if has .key $keys }}{{ fail (printf "apps: duplicate key %q" .key) }}{{ end }}
{{- $ids = append $ids .id }}{{- $keys = append $keys .key }}
{{- end }}
{{- end }}

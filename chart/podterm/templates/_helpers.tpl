{{/* Names, labels and computed settings shared by the templates. */}}

{{- define "podterm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "podterm.fullname" -}}
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

{{- define "podterm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "podterm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podterm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "podterm.labels" -}}
helm.sh/chart: {{ include "podterm.chart" . }}
{{ include "podterm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "podterm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podterm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "podterm.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "podterm.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{/*
Seconds in a podterm duration (250ms, 30s, 5m, 1h, or bare seconds), rounded up; fails the
render on anything else, so a typo cannot produce a grace period shorter than the drain.
*/}}
{{- define "podterm.durationSeconds" -}}
{{- $d := toString . | trim }}
{{- if regexMatch "^[0-9]+s?$" $d }}
{{- trimSuffix "s" $d | int }}
{{- else if regexMatch "^[0-9]+ms$" $d }}
{{- div (add (trimSuffix "ms" $d | int) 999) 1000 }}
{{- else if regexMatch "^[0-9]+m$" $d }}
{{- mul (trimSuffix "m" $d | int) 60 }}
{{- else if regexMatch "^[0-9]+h$" $d }}
{{- mul (trimSuffix "h" $d | int) 3600 }}
{{- else }}
{{- fail (printf "config.drainTimeout %q is not a duration (use e.g. 30s, 5m, 1h)" $d) }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep, then the whole drain, then a margin, so the
kubelet never kills a pod that is still draining its sessions.
*/}}
{{- define "podterm.terminationGracePeriodSeconds" -}}
{{- $drain := include "podterm.durationSeconds" .Values.config.drainTimeout | int }}
{{- add (int .Values.drain.preStopSleepSeconds) $drain (int .Values.drain.marginSeconds) }}
{{- end }}

{{- define "ext2int.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ext2int.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ext2int.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ext2int.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Monitors: one way to scrape, or every series would be there twice (and sums doubled). */}}
{{- define "ext2int.checkMonitors" -}}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled -}}
{{- fail "enable metrics.serviceMonitor or metrics.podMonitor, not both: Prometheus would scrape every series twice" -}}
{{- end -}}
{{- end -}}

{{- define "ext2int.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ext2int.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ext2int.secretName" -}}
{{- if .Values.immich.apiKey.existingSecret -}}
{{- .Values.immich.apiKey.existingSecret -}}
{{- else -}}
{{- include "ext2int.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "ext2int.secretKey" -}}
{{- if .Values.immich.apiKey.existingSecret -}}{{ .Values.immich.apiKey.existingSecretKey }}{{- else -}}api-key{{- end -}}
{{- end -}}

{{- define "ext2int.checkKey" -}}
{{- $one := or .Values.immich.apiKey.existingSecret .Values.immich.apiKey.value -}}
{{- if and (not $one) (not .Values.immich.apiKeys.existingSecret) -}}
{{- fail "set immich.apiKey.existingSecret (the name of a Secret holding the API key), immich.apiKey.value, or immich.apiKeys.existingSecret (a Secret with one key per user)" -}}
{{- end -}}
{{- if and $one .Values.immich.apiKeys.existingSecret -}}
{{- fail "set immich.apiKey (one user's key) or immich.apiKeys.existingSecret (one key per user), not both" -}}
{{- end -}}
{{- end -}}

{{/* The job's environment: the API key comes as a file from the Secret, everything else from values. */}}
{{- define "ext2int.env" -}}
- name: IMMICH_URL
  value: {{ .Values.immich.url | quote }}
{{- if .Values.immich.apiKeys.existingSecret }}
- name: IMMICH_API_KEYS_DIR
  value: /var/run/secrets/immich
{{- else }}
- name: IMMICH_API_KEY_FILE
  value: /var/run/secrets/immich/api-key
{{- end }}
{{- with .Values.migration }}
{{- if .libraryIds }}
- name: EXT2INT_LIBRARY_IDS
  value: {{ join "," .libraryIds | quote }}
{{- end }}
- name: EXT2INT_BATCH_SIZE
  value: {{ .batchSize | quote }}
{{- if .maxBytes }}
- name: EXT2INT_MAX_BYTES
  value: {{ .maxBytes | quote }}
{{- end }}
{{- if .maxDuration }}
- name: EXT2INT_MAX_DURATION
  value: {{ .maxDuration | quote }}
{{- end }}
- name: EXT2INT_CONCURRENCY
  value: {{ .concurrency | quote }}
- name: EXT2INT_DELETE
  value: {{ .delete | quote }}
- name: EXT2INT_SETTLE_TIMEOUT
  value: {{ .settleTimeout | quote }}
- name: EXT2INT_FACE_WAIT
  value: {{ .faceWait | quote }}
- name: EXT2INT_QUEUE_THRESHOLD
  value: {{ .queueThreshold | quote }}
- name: EXT2INT_QUEUE_ACTION
  value: {{ .queueAction | quote }}
- name: EXT2INT_QUEUE_MAX_PAUSE
  value: {{ .queueMaxPause | quote }}
- name: EXT2INT_SHUTDOWN_GRACE
  value: {{ .shutdownGrace | quote }}
- name: EXT2INT_LOG_FORMAT
  value: {{ .logFormat | quote }}
- name: EXT2INT_LOG_LEVEL
  value: {{ .logLevel | quote }}
{{- if .pathAliases }}
- name: EXT2INT_PATH_ALIASES
  value: {{ join "," .pathAliases | quote }}
{{- end }}
{{- end }}
- name: EXT2INT_TIMEZONE
  value: {{ .Values.timeZone | quote }}
- name: EXT2INT_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
{{- if eq .Values.mode "deployment" }}
- name: EXT2INT_SCHEDULE
  value: {{ .Values.schedule | quote }}
- name: EXT2INT_RUN_AT_START
  value: {{ .Values.deployment.runAtStart | quote }}
{{- else if .Values.metrics.pushgatewayUrl }}
- name: EXT2INT_PUSHGATEWAY_URL
  value: {{ .Values.metrics.pushgatewayUrl | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The pod: restricted Pod Security Standard, read-only root, the key mounted read-only.
     Called with (dict "root" . "command" "run|serve|plan"). */}}
{{- define "ext2int.podSpec" -}}
{{- $command := .command -}}
{{- with .root -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
automountServiceAccountToken: false
containers:
  - name: ext2int
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args: [{{ $command | quote }}]
    env:
      {{- include "ext2int.env" . | nindent 6 }}
    {{- if eq $command "serve" }}
    ports:
      - name: metrics
        containerPort: {{ .Values.metrics.port }}
        protocol: TCP
    readinessProbe:
      httpGet:
        path: /metrics
        port: metrics
      periodSeconds: 30
    livenessProbe:
      httpGet:
        path: /metrics
        port: metrics
      periodSeconds: 60
      failureThreshold: 5
    {{- end }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    volumeMounts:
      - name: api-key
        mountPath: /var/run/secrets/immich
        readOnly: true
      - name: tmp
        mountPath: /tmp
      {{- range $i, $m := .Values.libraryMounts }}
      - name: library-{{ $i }}
        mountPath: {{ $m.mountPath | quote }}
        readOnly: true
      {{- end }}
volumes:
  - name: api-key
    secret:
      {{- if .Values.immich.apiKeys.existingSecret }}
      secretName: {{ .Values.immich.apiKeys.existingSecret }}
      defaultMode: 0440
      {{- else }}
      secretName: {{ include "ext2int.secretName" . }}
      defaultMode: 0440
      items:
        - key: {{ include "ext2int.secretKey" . }}
          path: api-key
      {{- end }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- range $i, $m := .Values.libraryMounts }}
  - name: library-{{ $i }}
    {{- toYaml $m.volume | nindent 4 }}
  {{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
{{- end -}}

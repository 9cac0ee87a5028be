{{- define "strata.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "strata.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "strata.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "strata.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}

{{/* gRPC addresses of every storage node, through the headless Service's stable names */}}
{{- define "strata.storageAddrs" -}}
{{- $name := include "strata.fullname" . -}}
{{- $out := list -}}
{{- range $i := until (int .Values.storage.founders) -}}
{{- $out = append $out (printf "%s-storage-%d.%s-storage-headless.%s.svc:7070" $name $i $name $.Release.Namespace) -}}
{{- end -}}
{{ join "," $out }}
{{- end -}}

{{- define "strata.peers" -}}
{{- $name := include "strata.fullname" . -}}
{{- $out := list -}}
{{- range $i := until (int .Values.storage.founders) -}}
{{- $out = append $out (printf "%d=%s-storage-%d.%s-storage-headless.%s.svc:7070" (add $i 1) $name $i $name $.Release.Namespace) -}}
{{- end -}}
{{ join "," $out }}
{{- end -}}

{{/* The Secret with the cluster's gRPC TLS material (ca.crt, tls.crt, tls.key). */}}
{{- define "strata.grpcTlsSecret" -}}
{{- .Values.grpcTls.existingSecret | default (printf "%s-grpc-tls" (include "strata.fullname" .)) -}}
{{- end -}}

{{/* Flags of every member for the mutual TLS between cluster members. */}}
{{- define "strata.grpcTlsArgs" -}}
- --grpc-tls-cert-file=/etc/strata-tls/tls.crt
- --grpc-tls-key-file=/etc/strata-tls/tls.key
- --grpc-tls-ca-file=/etc/strata-tls/ca.crt
{{- end -}}

{{/* The volume of that Secret (mounted at /etc/strata-tls). */}}
{{- define "strata.grpcTlsVolume" -}}
- name: grpc-tls
  secret: {secretName: {{ include "strata.grpcTlsSecret" . }}, defaultMode: 0440}
{{- end -}}

{{/* Flags of every HTTP listener: web configuration (TLS, basic auth), tenants, limits. */}}
{{- define "strata.webArgs" -}}
{{- if .Values.web.configSecret }}
- --web.config.file=/etc/strata/web/web.yml
{{- if .Values.web.unauthenticatedProbes }}
- --web.unauthenticated-probes
{{- end }}
{{- end }}
{{- if .Values.web.multitenancy }}
- --auth.multitenancy-enabled
{{- end }}
{{- if .Values.web.tenantOperators }}
- --auth.tenant-operators={{ join "," .Values.web.tenantOperators }}
{{- end }}
{{- if .Values.web.runtimeConfig }}
- --runtime-config.file=/etc/strata/runtime/runtime.yml
{{- end }}
{{- end -}}

{{/* Mounts of the web configuration Secret and the runtime configuration. */}}
{{- define "strata.webMounts" -}}
{{- if .Values.web.configSecret }}
- {name: web-config, mountPath: /etc/strata/web, readOnly: true}
{{- end }}
{{- if .Values.web.runtimeConfig }}
- {name: runtime-config, mountPath: /etc/strata/runtime, readOnly: true}
{{- end }}
{{- end -}}

{{/* Volumes of the web configuration Secret and the runtime configuration ConfigMap. */}}
{{- define "strata.webVolumes" -}}
{{- if .Values.web.configSecret }}
- name: web-config
  secret: {secretName: {{ .Values.web.configSecret }}, defaultMode: 0440}
{{- end }}
{{- if .Values.web.runtimeConfig }}
- name: runtime-config
  configMap: {name: {{ include "strata.fullname" . }}-runtime}
{{- end }}
{{- end -}}

{{/* The probes' scheme: HTTPS when the web configuration turns TLS on. */}}
{{- define "strata.probeScheme" -}}
{{- if .Values.web.tls }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

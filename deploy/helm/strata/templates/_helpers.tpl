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

// Go template snippets for alert annotations. Prometheus expands them at every evaluation with
// the alert's $labels (the labels of the expression's result, __name__ included) and $value.
{
  // selector sets $sel to the alert's series as PromQL matchers, `k="v",` for each label but
  // __name__. The output series of one input series all carry the same labels, so
  // `anomaly_value{<$sel>}` selects the one value series that goes with the alerting score.
  // %q quotes like Go, and PromQL unquotes its strings like Go, so any label value round-trips.
  selector: |||
    {{- $sel := "" -}}
    {{- range $k, $v := $labels -}}
      {{- if ne $k "__name__" }}{{ $sel = printf "%s%s=%q," $sel $k $v }}{{ end -}}
    {{- end -}}
  |||,

  // fetch sets $v_<name> for each name in names (from value, expected, lower, upper) to the
  // current value of anomaly_<name> of the alert's series, with one query; "unknown" if the
  // series is gone. Needs selector first.
  fetch(names):
    std.join('', ['{{- $v_' + n + ' := "unknown" -}}\n' for n in names]) +
    '{{- range printf "{__name__=~\\"anomaly_(' + std.join('|', names) + ')\\",%s}" $sel | query -}}\n' +
    std.join('', [
      '  {{- if eq (label "__name__" .) "anomaly_' + n + '" }}{{ $v_' + n + ' = printf "%.4g" .Value }}{{ end -}}\n'
      for n in names
    ]) +
    '{{- end -}}\n',

  // series renders the alert's input series as it was before scoring:
  // metric{label="value", ...}, from anomaly_metric and the other labels.
  series: std.rstripChars(|||
    {{ $labels.anomaly_metric }}{{ "{" }}
    {{- $comma := "" -}}
    {{- range $k, $v := $labels -}}
      {{- if and (ne $k "__name__") (ne $k "anomaly_metric") }}{{ $comma }}{{ $k }}={{ printf "%q" $v }}{{ $comma = ", " }}{{ end -}}
    {{- end -}}
    {{ "}" }}
  |||, '\n'),

  // group renders the group labels of an alert: cluster="a", namespace="b", job="c".
  group(labels): std.join(', ', ['%s="{{ $labels.%s }}"' % [l, l] for l in labels]),

  // groupSelector sets $gsel to the PromQL matchers of the alert's group.
  groupSelector(labels):
    '{{- $gsel := printf "' + std.join(',', [l + '=%q' for l in labels]) + '" ' +
    std.join(' ', ['$labels.' + l for l in labels]) + ' -}}',
}

// Just enough of Grafana's dashboard model to write the mixin's dashboards in plain jsonnet:
// a dashboard, its template variables, three panel types and a grid layout. Everything queries
// the Prometheus data source chosen in the `datasource` variable.
{
  local ds = { type: 'prometheus', uid: '${datasource}' },

  // dashboard is a whole dashboard. panels are laid out by grid().
  dashboard(config, uid, title, description, variables, panels):: {
    uid: uid,
    title: config.dashboardNamePrefix + title,
    description: description,
    tags: config.dashboardTags,
    timezone: config.dashboardTimezone,
    refresh: config.dashboardRefresh,
    time: { from: config.dashboardFrom, to: 'now' },
    editable: false,
    graphTooltip: 1,
    schemaVersion: 39,
    links: [{
      title: 'Anomaly dashboards',
      type: 'dashboards',
      tags: config.dashboardTags,
      asDropdown: true,
      includeVars: true,
      keepTime: true,
    }],
    annotations: { list: [{
      builtIn: 1,
      datasource: { type: 'grafana', uid: '-- Grafana --' },
      enable: true,
      hide: true,
      iconColor: 'rgba(0, 211, 255, 1)',
      name: 'Annotations & Alerts',
      type: 'dashboard',
    }] },
    templating: { list: [$.datasourceVariable] + variables },
    panels: $.grid(panels),
  },

  datasourceVariable:: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: { selected: false, text: 'default', value: 'default' },
    hide: 0,
    refresh: 1,
    regex: '',
  },

  // variable is a query variable. allValue '.+' on job and instance, as Grafana's linter wants;
  // '.*' on labels some series lack (cluster, namespace), so that "All" matches them too.
  variable(name, label, query, multi=true, includeAll=true, allValue='.+', regex=''):: {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    definition: query,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    sort: 1,
    multi: multi,
    includeAll: includeAll,
    [if includeAll || multi then 'allValue']: allValue,
    regex: regex,
    current: {},
    options: [],
    hide: 0,
  },

  // target is one PromQL query of a panel.
  target(expr, legend='__auto', refId='A', instant=false, format='time_series'):: {
    datasource: ds,
    expr: expr,
    legendFormat: legend,
    refId: refId,
    [if instant then 'instant']: true,
    [if instant then 'range']: false,
    format: format,
  },

  local withRefIds(targets) = [
    targets[i] { refId: std.char(std.codepoint('A') + i) }
    for i in std.range(0, std.length(targets) - 1)
  ],

  local panel(type, title, description, targets, w, h) = {
    type: type,
    title: title,
    description: description,
    datasource: ds,
    targets: withRefIds(targets),
    gridPos: { w: w, h: h },
  },

  // timeseries is a graph. overrides are Grafana field overrides.
  timeseries(title, description, targets, unit, w=12, h=8, overrides=[], stack=false, min=null):: panel('timeseries', title, description, targets, w, h) {
    fieldConfig: {
      defaults: {
        unit: unit,
        [if min != null then 'min']: min,
        custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: if stack then 30 else 0,
          showPoints: 'never',
          spanNulls: false,
          stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
        },
      },
      overrides: overrides,
    },
    options: {
      legend: { showLegend: true, displayMode: 'list', placement: 'bottom' },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  },

  // stat is a single number; thresholds is a list of [value, color], the first value null.
  stat(title, description, targets, unit, w=4, h=4, thresholds=[[null, 'green']], decimals=null, mappings=null):: panel('stat', title, description, targets, w, h) {
    fieldConfig: {
      defaults: {
        unit: unit,
        [if decimals != null then 'decimals']: decimals,
        [if mappings != null then 'mappings']: mappings,
        thresholds: { mode: 'absolute', steps: [{ value: s[0], color: s[1] } for s in thresholds] },
        color: { mode: 'thresholds' },
      },
      overrides: [],
    },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'none',
      textMode: 'auto',
      justifyMode: 'auto',
    },
  },

  // table shows instant queries; transformations and overrides shape it.
  table(title, description, targets, w=12, h=8, transformations=[], overrides=[], sortBy=[], unit='none'):: panel('table', title, description, targets, w, h) {
    fieldConfig: { defaults: { unit: unit, custom: { align: 'auto' } }, overrides: overrides },
    options: { showHeader: true, sortBy: sortBy },
    transformations: transformations,
  },

  // override is a field override by display name (or by regexp on it).
  override(name, properties, regexp=false):: {
    matcher: { id: if regexp then 'byRegexp' else 'byName', options: name },
    properties: [{ id: k, value: properties[k] } for k in std.objectFields(properties)],
  },

  // grid places panels left to right in rows 24 units wide, wrapping when a panel does not fit,
  // and numbers them.
  grid(panels)::
    local place(acc, p) =
      local wrap = acc.x + p.gridPos.w > 24;
      local x = if wrap then 0 else acc.x;
      local y = if wrap then acc.y + acc.rowH else acc.y;
      local rowH = if wrap then p.gridPos.h else std.max(acc.rowH, p.gridPos.h);
      {
        x: x + p.gridPos.w,
        y: y,
        rowH: rowH,
        out: acc.out + [p { id: std.length(acc.out) + 1, gridPos+: { x: x, y: y } }],
      };
    std.foldl(place, panels, { x: 0, y: 0, rowH: 0, out: [] }).out,
}

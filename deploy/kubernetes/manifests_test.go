// Package kubernetes holds the Kubernetes manifests of the exporter (plain YAML, applied with
// kubectl apply -k); its test checks that they parse and fit together.
package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/anomaly-exporter/anomaly_exporter/config"
)

// obj is one parsed YAML document.
type obj = map[string]any

// get walks a path of map keys and list indices ("spec", "template", 0, …).
func get(t *testing.T, o any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := o.(obj)
			require.Truef(t, ok, "%v: not a mapping at %q", path, k)
			o, ok = m[k]
			require.Truef(t, ok, "%v: no %q", path, k)
		case int:
			l, ok := o.([]any)
			require.Truef(t, ok && k < len(l), "%v: no item %d", path, k)
			o = l[k]
		}
	}
	return o
}

func str(t *testing.T, o any, path ...any) string {
	t.Helper()
	s, ok := get(t, o, path...).(string)
	require.Truef(t, ok, "%v: not a string", path)
	return s
}

func list(t *testing.T, o any, path ...any) []any {
	t.Helper()
	l, ok := get(t, o, path...).([]any)
	require.Truef(t, ok, "%v: not a list", path)
	return l
}

func stringMap(t *testing.T, o any, path ...any) map[string]string {
	t.Helper()
	m, ok := get(t, o, path...).(obj)
	require.Truef(t, ok, "%v: not a mapping", path)
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.(string)
	}
	return out
}

// subset reports whether every label of sel is in lbls: a selector matches.
func subset(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if lbls[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// load parses every YAML document of every manifest, by file.
func load(t *testing.T) map[string][]obj {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string][]obj{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o obj
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			if o == nil {
				continue
			}
			require.NotEmpty(t, str(t, o, "apiVersion"), f)
			require.NotEmpty(t, str(t, o, "kind"), f)
			if o["kind"] != "Kustomization" {
				require.NotEmpty(t, str(t, o, "metadata", "name"), f)
			}
			out[f] = append(out[f], o)
		}
	}
	return out
}

// byKind returns the one document of a kind.
func byKind(t *testing.T, docs map[string][]obj, kind string) obj {
	t.Helper()
	var found []obj
	for _, ds := range docs {
		for _, d := range ds {
			if d["kind"] == kind {
				found = append(found, d)
			}
		}
	}
	require.Lenf(t, found, 1, "documents of kind %s", kind)
	return found[0]
}

func TestManifests(t *testing.T) {
	docs := load(t)
	var kinds []string
	for _, ds := range docs {
		for _, d := range ds {
			kinds = append(kinds, d["kind"].(string)+" "+d["apiVersion"].(string))
		}
	}
	sort.Strings(kinds)
	require.Equal(t, []string{
		"ConfigMap v1",
		"Kustomization kustomize.config.k8s.io/v1beta1",
		"PrometheusRule monitoring.coreos.com/v1",
		"Service v1",
		"ServiceMonitor monitoring.coreos.com/v1",
		"StatefulSet apps/v1",
	}, kinds)

	// The kustomization lists every other file.
	var resources []string
	for _, r := range list(t, byKind(t, docs, "Kustomization"), "resources") {
		resources = append(resources, r.(string))
	}
	var files []string
	for f := range docs {
		if f != "kustomization.yaml" {
			files = append(files, f)
		}
	}
	sort.Strings(resources)
	sort.Strings(files)
	require.Equal(t, files, resources)

	sts, svc := byKind(t, docs, "StatefulSet"), byKind(t, docs, "Service")
	sm, cm := byKind(t, docs, "ServiceMonitor"), byKind(t, docs, "ConfigMap")
	podLabels := stringMap(t, sts, "spec", "template", "metadata", "labels")
	require.True(t, subset(stringMap(t, sts, "spec", "selector", "matchLabels"), podLabels), "StatefulSet selector")
	require.True(t, subset(stringMap(t, svc, "spec", "selector"), podLabels), "Service selector")
	require.True(t, subset(stringMap(t, sm, "spec", "selector", "matchLabels"), stringMap(t, svc, "metadata", "labels")), "ServiceMonitor selector")
	require.Equal(t, str(t, svc, "metadata", "name"), str(t, sts, "spec", "serviceName"), "the headless Service names the replicas")
	require.Equal(t, "None", str(t, svc, "spec", "clusterIP"), "headless: one DNS name per replica")

	// Ports: the container listens where its flag says, under the name the rest refers to.
	ctrs := list(t, sts, "spec", "template", "spec", "containers")
	require.Len(t, ctrs, 1)
	ctr := ctrs[0]
	args := map[string]string{}
	for _, a := range list(t, ctr, "args") {
		n, v, _ := strings.Cut(strings.TrimPrefix(a.(string), "--"), "=")
		args[n] = v
	}
	ports := map[string]int{}
	for _, p := range list(t, ctr, "ports") {
		ports[str(t, p, "name")] = get(t, p, "containerPort").(int)
	}
	_, listen, _ := strings.Cut(args["web.listen-address"], ":")
	require.Equal(t, strconv.Itoa(ports["http"]), listen, "--web.listen-address and the http port")
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		require.Contains(t, ports, str(t, ctr, probe, "httpGet", "port"), probe)
	}
	require.Equal(t, "/-/ready", str(t, ctr, "readinessProbe", "httpGet", "path"))
	require.Equal(t, "/-/healthy", str(t, ctr, "livenessProbe", "httpGet", "path"))
	svcPorts := map[string]bool{}
	for _, p := range list(t, svc, "spec", "ports") {
		require.Contains(t, ports, str(t, p, "targetPort"), "Service targetPort")
		svcPorts[str(t, p, "name")] = true
	}
	paths := map[string]bool{}
	for _, e := range list(t, sm, "spec", "endpoints") {
		require.True(t, svcPorts[str(t, e, "port")], "ServiceMonitor port %s", str(t, e, "port"))
		p := str(t, e, "path")
		paths[p] = true
		if p == "/scores" {
			require.Equal(t, true, get(t, e, "honorLabels"), "/scores keeps its job and instance labels")
		}
	}
	require.Equal(t, map[string]bool{"/metrics": true, "/scores": true}, paths)

	// Volumes: every mount has a volume or a claim template; the checkpoint directory is on the
	// claim, the configuration file in the ConfigMap, and it loads.
	volumes := map[string]any{}
	for _, v := range list(t, sts, "spec", "template", "spec", "volumes") {
		volumes[str(t, v, "name")] = v
	}
	for _, c := range list(t, sts, "spec", "volumeClaimTemplates") {
		volumes[str(t, c, "metadata", "name")] = "claim"
	}
	mounts := map[string]string{}
	for _, m := range list(t, ctr, "volumeMounts") {
		require.Contains(t, volumes, str(t, m, "name"), "volume of mount %s", str(t, m, "mountPath"))
		mounts[str(t, m, "mountPath")] = str(t, m, "name")
	}
	require.Equal(t, "claim", volumes[mounts[args["storage.path"]]], "--storage.path is on the persistent volume")
	cfgDir, cfgFile := filepath.Split(args["config.file"])
	cfgVol := volumes[mounts[filepath.Clean(cfgDir)]]
	require.NotNil(t, cfgVol, "--config.file is on a mounted volume")
	require.Equal(t, str(t, cm, "metadata", "name"), str(t, cfgVol, "configMap", "name"))
	_, err := config.Load([]byte(str(t, cm, "data", cfgFile)))
	require.NoError(t, err, "the ConfigMap's configuration")

	// The PrometheusRule is the mixin's rules, group for group.
	var want []any
	rules, err := filepath.Glob("../../rules/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, rules)
	for _, f := range rules {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var o obj
		require.NoError(t, yaml.Unmarshal(b, &o), f)
		want = append(want, list(t, o, "groups")...)
	}
	got := list(t, byKind(t, docs, "PrometheusRule"), "spec", "groups")
	require.Equal(t, want, got, "deploy/kubernetes/prometheusrule.yaml differs from rules/: make kubernetes")
	require.True(t, slices.ContainsFunc(got, func(g any) bool { return len(list(t, g, "rules")) > 0 }))
}

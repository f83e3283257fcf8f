// render renders a Helm chart the way `helm template` does, for machines without Helm (Debian 12
// does not package it). It uses the same engine as Helm 3 — Go's text/template with the Sprig
// function library (Debian's golang-github-masterminds-sprig-dev, the version Helm 3 pins) — and
// Helm's extra functions (include, tpl, required, toYaml, fromYaml, lookup), objects (.Values,
// .Release, .Chart, .Capabilities, .Template, .Files) and output order (by kind, as Helm installs).
// It covers what deploy/helm/proxsparse uses; chart features it does not implement (subcharts,
// hooks, values.schema.json) make it fail rather than render something different.
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build -o render ./deploy/helm/render
// Use:   render [-f values.yaml]... [--namespace NS] [--name RELEASE] CHART_DIR
// (--show-only templates/x.yaml, repeatable, keeps only those templates' output, as in Helm).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

// installOrder is Helm 3's kind order (pkg/releaseutil/kind_sorter.go); unknown kinds go last.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// files is .Files: the chart's non-template files, read on demand.
type files struct{ root string }

func (f files) Get(name string) string {
	b, err := os.ReadFile(filepath.Join(f.root, name))
	if err != nil {
		panic(fmt.Sprintf(".Files.Get %q: %v", name, err))
	}
	return string(b)
}

type apiVersions []string

func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

type doc struct {
	source, kind, text string
	order, seq         int
}

func readYAML(path string) (map[string]interface{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

// merge deep-merges src into dst (maps merge, everything else replaces), as Helm does with -f.
func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				merge(dm, sm)
				continue
			}
		}
		if v == nil {
			delete(dst, k)
			continue
		}
		dst[k] = v
	}
}

// chartMeta maps Chart.yaml keys to the capitalised fields templates use (.Chart.Name ...).
func chartMeta(raw map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range raw {
		out[strings.ToUpper(k[:1])+k[1:]] = v
	}
	return out
}

func toYAML(v interface{}) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

func run() error {
	var valueFiles multiFlag
	flag.Var(&valueFiles, "f", "values file (repeatable, later ones win)")
	ns := flag.String("namespace", "default", "release namespace")
	name := flag.String("name", "proxsparse", "release name")
	var showOnly multiFlag
	flag.Var(&showOnly, "show-only", "only the output of this template (repeatable)")
	kubeVersion := flag.String("kube-version", "v1.28.0", "Kubernetes version for .Capabilities")
	flag.Parse()
	if flag.NArg() != 1 {
		return errors.New("usage: render [-f values.yaml]... [flags] CHART_DIR")
	}
	chartDir := flag.Arg(0)
	if _, err := os.Stat(filepath.Join(chartDir, "charts")); err == nil {
		return errors.New("subcharts are not supported by this renderer")
	}
	if _, err := os.Stat(filepath.Join(chartDir, "values.schema.json")); err == nil {
		return errors.New("values.schema.json is not supported by this renderer")
	}
	rawChart, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range valueFiles {
		v, err := readYAML(f)
		if err != nil {
			return err
		}
		merge(values, v)
	}
	chart := chartMeta(rawChart)
	chartName := fmt.Sprint(chart["Name"])
	major, minor := "1", "28"
	if parts := strings.Split(strings.TrimPrefix(*kubeVersion, "v"), "."); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	caps := map[string]interface{}{
		"KubeVersion": map[string]interface{}{"Version": *kubeVersion, "GitVersion": *kubeVersion,
			"Major": major, "Minor": minor},
		"APIVersions": apiVersions{"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1",
			"policy/v1", "networking.k8s.io/v1"},
	}
	release := map[string]interface{}{"Name": *name, "Namespace": *ns, "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false, "Revision": 1}

	// Parse every template into one set so include/define work across files.
	tdir := filepath.Join(chartDir, "templates")
	var paths []string
	err = filepath.Walk(tdir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || (reflect.ValueOf(v).Kind() == reflect.String && v.(string) == "") {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["lookup"] = func(string, string, string, string) map[string]interface{} {
		return map[string]interface{}{} // as `helm template`: no cluster to look in
	}
	funcs["include"] = func(string, interface{}) (string, error) { return "", nil }
	funcs["tpl"] = func(string, interface{}) (string, error) { return "", nil }
	root.Funcs(funcs).Option("missingkey=zero")
	funcs["include"] = func(n string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, n, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		if t, err = t.New("tpl").Parse(text); err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs)
	for _, p := range paths {
		rel, _ := filepath.Rel(chartDir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if _, err := root.New(chartName + "/" + filepath.ToSlash(rel)).Parse(string(b)); err != nil {
			return err
		}
	}

	shown := map[string]bool{}
	for _, s := range showOnly {
		shown[chartName+"/"+filepath.ToSlash(s)] = false
	}
	var docs []doc
	for _, p := range paths {
		rel, _ := filepath.Rel(chartDir, p)
		tname := chartName + "/" + filepath.ToSlash(rel)
		base := filepath.Base(p)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		if len(showOnly) > 0 {
			if _, ok := shown[tname]; !ok {
				continue
			}
			shown[tname] = true
		}
		data := map[string]interface{}{"Values": values, "Release": release, "Chart": chart,
			"Capabilities": caps, "Files": files{chartDir},
			"Template": map[string]interface{}{"Name": tname, "BasePath": chartName + "/templates"}}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, tname, data); err != nil {
			return err
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, part := range strings.Split("\n"+out, "\n---") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			text := strings.Trim(part, "\n")
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(text), &head); err != nil {
				return fmt.Errorf("%s: rendered YAML does not parse: %v\n%s", tname, err, text)
			}
			if head.Kind == "" {
				return fmt.Errorf("%s: rendered document has no kind", tname)
			}
			if strings.Contains(text, "helm.sh/hook") {
				return fmt.Errorf("%s: Helm hooks are not supported by this renderer", tname)
			}
			order := len(installOrder)
			for i, k := range installOrder {
				if k == head.Kind {
					order = i
				}
			}
			docs = append(docs, doc{tname, head.Kind, text, order, len(docs)})
		}
	}
	for name, seen := range shown {
		if !seen {
			return fmt.Errorf("--show-only %s: no such template", name)
		}
	}
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].order < docs[j].order })
	for _, d := range docs {
		fmt.Printf("---\n# Source: %s\n%s\n", d.source, d.text)
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

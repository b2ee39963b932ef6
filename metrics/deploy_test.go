package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/rdmaconsensus/mu/hwmon"
)

// The dashboard, the alerting rules and docs/metrics.md name metrics by
// string; these tests fail the build when one names a metric the code does
// not export, so a rename in code cannot silently blank a panel or an alert.

const (
	dashboardFile = "../deploy/grafana/mu-dashboard.json"
	rulesFile     = "../deploy/prometheus/mu-alerts.yml"
	metricsDoc    = "../docs/metrics.md"
)

// collecting keeps what is registered, so its descriptions can be read.
type collecting struct{ cs []prometheus.Collector }

func (c *collecting) Register(x prometheus.Collector) error { c.cs = append(c.cs, x); return nil }
func (c *collecting) MustRegister(xs ...prometheus.Collector) {
	c.cs = append(c.cs, xs...)
}
func (c *collecting) Unregister(prometheus.Collector) bool { return false }

var fqName = regexp.MustCompile(`fqName: "([a-z0-9_:]+)"`)

// exported is every metric name mu exports: the consensus collector's
// (with a WAL) and the hardware monitor's.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := &collecting{}
	reg.MustRegister(New(fakeReplica{}, fakeWAL{}))
	if err := (&hwmon.Monitor{}).Register(reg); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range reg.cs {
		ch := make(chan *prometheus.Desc, 256)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			names[m[1]] = true
		}
	}
	return names
}

var metricRef = regexp.MustCompile(`\bmu_[a-z0-9_]*[a-z0-9]`)

// referenced is every mu_ metric an expression names; a histogram's
// _bucket, _sum and _count series count as the histogram.
func referenced(exprs []string, known map[string]bool) []string {
	var out []string
	for _, e := range exprs {
		for _, n := range metricRef.FindAllString(e, -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(n, suffix); ok && known[base] {
					n = base
				}
			}
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatalf("%s: no queries", dashboardFile)
	}
	return exprs
}

func ruleExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var exprs []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

func TestDeployQueriesNameExportedMetrics(t *testing.T) {
	known := exported(t)
	for file, exprs := range map[string][]string{dashboardFile: dashboardExprs(t), rulesFile: ruleExprs(t)} {
		for _, n := range referenced(exprs, known) {
			if !known[n] {
				t.Errorf("%s queries %s, which the code does not export", file, n)
			}
		}
	}
}

func TestMetricsDocListsEveryMetric(t *testing.T) {
	b, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	known := exported(t)
	documented := map[string]bool{}
	for _, n := range referenced([]string{string(b)}, known) {
		documented[n] = true
		if !known[n] {
			t.Errorf("%s describes %s, which the code does not export", metricsDoc, n)
		}
	}
	for n := range known {
		if !documented[n] {
			t.Errorf("%s does not describe %s", metricsDoc, n)
		}
	}
}

// TestDashboardQueriesParse hands the dashboard's queries to promtool as
// recording rules, so a query Prometheus would reject fails here. make
// test-alerts sets MU_REQUIRE_PROMTOOL; elsewhere it skips without promtool.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("MU_REQUIRE_PROMTOOL") != "" {
			t.Fatal("promtool not found (Debian package prometheus; scripts/deps.sh installs it)")
		}
		t.Skip("promtool not found")
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, e := range dashboardExprs(t) {
		// Grafana's template variable, as Grafana substitutes it for "All".
		e = strings.ReplaceAll(e, `"$job"`, `".+"`)
		rules = append(rules, rule{Record: "dashboard_query", Expr: e})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool rejects a dashboard query: %v\n%s", err, out)
	}
}

// amdecode reads pg_vigil webhook bodies, one JSON document per line on
// stdin, and decodes each into Alertmanager's own types
// (notify/webhook.Message, template.Data, template.Alert), as a receiver
// written against Alertmanager would. It checks what such a receiver relies
// on and that each alert's fingerprint is Alertmanager's label-set
// fingerprint of its labels but severity (pg_vigil's identity). It prints
// "ok <n> alerts" per document, or the first problem, and exits 1 if any
// document fails.
//
// Built by the e2e suite against Debian's golang-github-prometheus-alertmanager-dev
// (GOPATH mode, offline).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/common/model"
)

var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

func check(line []byte) (int, error) {
	var msg webhook.Message
	if err := json.Unmarshal(line, &msg); err != nil {
		return 0, fmt.Errorf("does not decode into webhook.Message: %v", err)
	}
	if msg.Data == nil {
		return 0, fmt.Errorf("no template.Data")
	}
	if msg.Version != "4" {
		return 0, fmt.Errorf("version %q, want 4", msg.Version)
	}
	if msg.Status != "firing" && msg.Status != "resolved" {
		return 0, fmt.Errorf("status %q", msg.Status)
	}
	if msg.GroupKey == "" || msg.Receiver == "" || len(msg.Alerts) == 0 {
		return 0, fmt.Errorf("groupKey, receiver or alerts missing")
	}
	if _, ok := msg.GroupLabels["alertname"]; !ok {
		return 0, fmt.Errorf("groupLabels lack alertname: %v", msg.GroupLabels)
	}
	for i, a := range msg.Alerts {
		if a.Status != "firing" && a.Status != "resolved" {
			return 0, fmt.Errorf("alert %d status %q", i, a.Status)
		}
		if a.Labels["alertname"] == "" {
			return 0, fmt.Errorf("alert %d has no alertname", i)
		}
		if a.StartsAt.IsZero() {
			return 0, fmt.Errorf("alert %d has no startsAt", i)
		}
		if a.Status == "resolved" && a.EndsAt.Before(a.StartsAt) {
			return 0, fmt.Errorf("alert %d ends before it starts", i)
		}
		if !hex16.MatchString(a.Fingerprint) {
			return 0, fmt.Errorf("alert %d fingerprint %q", i, a.Fingerprint)
		}
		identity := model.LabelSet{}
		for k, v := range a.Labels {
			if k != "severity" {
				identity[model.LabelName(k)] = model.LabelValue(v)
			}
		}
		if fp := identity.Fingerprint().String(); fp != a.Fingerprint {
			return 0, fmt.Errorf("alert %d fingerprint %s, Alertmanager computes %s over %v", i, a.Fingerprint, fp, identity)
		}
	}
	return len(msg.Alerts), nil
}

func main() {
	failed := false
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		n, err := check(in.Bytes())
		if err != nil {
			fmt.Println("error:", err)
			failed = true
			continue
		}
		fmt.Printf("ok %d alerts\n", n)
	}
	if err := in.Err(); err != nil {
		fmt.Println("error: reading stdin:", err)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}

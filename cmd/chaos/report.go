package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// printTable writes one line per setup with the campaign's figures.
func printTable(w io.Writer, rs []*Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "setup\tseed\tduration\tfaults\tsent\tacked\treceived\tlost\tout of order\tduplicates by id\tdocumented\tfailures\tlegacy sent/received")
	for _, r := range rs {
		if r == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d/%d\n", r.Setup, r.Seed, r.Duration, faultSummary(r.FaultsByKind),
			r.Sent, r.Acked, r.Received, r.Lost, r.OutOfOrder, r.Duplicates, len(r.Documented), len(r.Failures), r.LegacySent, r.LegacyReceived)
	}
	_ = tw.Flush()
}

func faultSummary(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// printReport writes the table, then every setup's failures, documented cases
// and notes in detail.
func printReport(w io.Writer, rs []*Result) {
	printTable(w, rs)
	for _, r := range rs {
		if r == nil {
			continue
		}
		fmt.Fprintf(w, "\n== %s (seed %d): %s\n", r.Setup, r.Seed, verdict(r))
		fmt.Fprintf(w, "legacy: sent %d, received %d, lost %d, duplicates %d, out of order %d (losses and duplicates reported, not failures: legacy clients get no acks and ignore ids; order and phantoms are checked)\n",
			r.LegacySent, r.LegacyReceived, r.LegacyLost, r.LegacyDuplicates, r.LegacyOutOfOrder)
		printFindings(w, "FAILURE", r.Failures)
		printFindings(w, "documented (an init that got unavailable, or a sender that changed node during a fault)", r.Documented)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
		if r.Failed() {
			fmt.Fprintf(w, "history: %s\nnode logs: %s\n", r.History, strings.Join(r.Logs, " "))
		}
	}
}

func verdict(r *Result) string {
	if r.Failed() {
		return fmt.Sprintf("FAILED, %d failure(s)", len(r.Failures))
	}
	return "ok"
}

// maxListed bounds the findings printed per rule; the history has them all.
const maxListed = 40

func printFindings(w io.Writer, label string, fs []Finding) {
	perRule := map[string]int{}
	for _, f := range fs {
		perRule[f.Rule]++
		if perRule[f.Rule] > maxListed {
			continue
		}
		fmt.Fprintf(w, "%s %s: %s", label, f.Rule, f.Detail)
		if f.ID != "" {
			fmt.Fprintf(w, "\n    id %s, %s -> %s, ack %s", f.ID, f.Sender, f.Recipient, f.Ack)
		}
		if f.Nodes != "" {
			fmt.Fprintf(w, "\n    %s", f.Nodes)
		}
		if len(f.Faults) > 0 {
			fmt.Fprintf(w, "\n    faults around then: %s", strings.Join(f.Faults, "; "))
		}
		fmt.Fprintln(w)
	}
	for rule, n := range perRule {
		if n > maxListed {
			fmt.Fprintf(w, "%s %s: %d more not listed (see the history)\n", label, rule, n-maxListed)
		}
	}
}

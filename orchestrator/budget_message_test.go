package orchestrator

import (
	"testing"

	"github.com/codemachine/codemachine/workflow"
)

// TestBudgetMessageShowsTheOverrun: the message of a budget stop says what
// was spent and the limit so that the one is visibly over the other, and
// the limit as it was written, whatever rounding the run table uses.
func TestBudgetMessageShowsTheOverrun(t *testing.T) {
	var o Orchestrator
	cases := []struct {
		budget workflow.Budget
		sum    Summary
		want   string
	}{
		{workflow.Budget{Tokens: 1210}, Summary{TokensIn: 1100, TokensOut: 120}, "budget exceeded: tokens 1220 of 1210; the run stopped"},
		{workflow.Budget{Tokens: 1000}, Summary{TokensIn: 1400, TokensOut: 120}, "budget exceeded: tokens 1.5k of 1.0k; the run stopped"},
		{workflow.Budget{USD: 0.015}, Summary{CostUSD: 0.02}, "budget exceeded: cost $0.020 of $0.015; the run stopped"},
		{workflow.Budget{USD: 5}, Summary{CostUSD: 5.004}, "budget exceeded: cost $5.004 of $5.000; the run stopped"},
		{workflow.Budget{USD: 5}, Summary{CostUSD: 7.5}, "budget exceeded: cost $7.50 of $5.00; the run stopped"},
		{workflow.Budget{USD: 1}, Summary{CostUSD: 1.0000001}, "budget exceeded: cost $1.000000 of $1.000000; the run stopped"},
	}
	for _, c := range cases {
		err := o.checkBudget(c.budget, c.sum)
		if err == nil || err.Error() != c.want {
			t.Errorf("checkBudget(%+v, %+v) = %v, want %s", c.budget, c.sum, err, c.want)
		}
	}
	if err := o.checkBudget(workflow.Budget{USD: 1, Tokens: 10}, Summary{CostUSD: 1, TokensIn: 10}); err != nil {
		t.Errorf("at the limit: %v, want no error", err)
	}
}

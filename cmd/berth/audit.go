package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/audit"
	berthclient "github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/server"
)

// auditCmds are berth audit, approvals, approve and deny: the server's audit
// trail, and the actions waiting for approval under the confirm policy.
func (a *app) auditCmds() []*cobra.Command {
	return []*cobra.Command{a.auditCmd(), a.approvalsCmd(), a.approveCmd(), a.denyCmd()}
}

// serverClient is the client of the berth server: --host / BERTH_HOST, else
// the [server] addr of berth.toml, else server.DefaultAddr.
func (a *app) serverClient() (*berthclient.Client, error) {
	if a.remote != nil {
		return a.remote, nil
	}
	addr := a.cfg.Server.Addr
	if addr == "" {
		addr = server.DefaultAddr
	}
	c, err := berthclient.New("http://"+addr, os.Getenv(berthclient.EnvToken), nil)
	if err != nil {
		return nil, fmt.Errorf("berth server at %s: %w", addr, err)
	}
	return c, nil
}

func (a *app) approvalsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "approvals [-o json]",
		Short: "List the actions waiting for approval (security policy \"confirm\" of berth serve)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := a.serverClient()
			if err != nil {
				return err
			}
			list, err := c.Approvals(cmd.Context())
			if err != nil {
				return fmt.Errorf("approvals: %w", err)
			}
			if output == "json" {
				return writeJSON(a.stdout, list)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSANDBOX\tACTION\tLEVEL\tRULES\tEXPIRES\tWHAT")
			for _, p := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, auditShortID(p.Sandbox), p.Action, p.Level,
					dash(strings.Join(p.Rules, ",")), time.Until(p.Expires).Round(time.Second), auditLine(p.What, 80))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) approveCmd() *cobra.Command {
	var deny bool
	cmd := &cobra.Command{
		Use:   "approve [--deny] [SANDBOX] ACTION",
		Short: "Approve (or, with --deny, refuse) an action waiting for approval; see berth approvals",
		Long: "Approve an action waiting for approval under the security policy \"confirm\" of berth serve.\n" +
			"ACTION is the id berth approvals shows; with SANDBOX (an id or its prefix) the action must be of that sandbox.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.answer(cmd, args, !deny)
		},
	}
	cmd.Flags().BoolVar(&deny, "deny", false, "refuse the action instead")
	return cmd
}

func (a *app) denyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "deny [SANDBOX] ACTION",
		Short: "Refuse an action waiting for approval (same as berth approve --deny)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.answer(cmd, args, false)
		},
	}
}

// answer approves or refuses the action of args ([SANDBOX] ACTION).
func (a *app) answer(cmd *cobra.Command, args []string, approve bool) error {
	verb := "approve"
	if !approve {
		verb = "deny"
	}
	id, sandboxRef := args[len(args)-1], ""
	if len(args) == 2 {
		sandboxRef = args[0]
	}
	c, err := a.serverClient()
	if err != nil {
		return err
	}
	if sandboxRef != "" {
		list, err := c.Approvals(cmd.Context())
		if err != nil {
			return fmt.Errorf("%s %s: %w", verb, id, err)
		}
		found := false
		for _, p := range list {
			if p.ID != id {
				continue
			}
			found = true
			if !strings.HasPrefix(p.Sandbox, sandboxRef) {
				return fmt.Errorf("%s %s: the action is of sandbox %s, not %q; nothing was answered", verb, id, p.Sandbox, sandboxRef)
			}
		}
		if !found {
			return fmt.Errorf("%s %s: no such action waiting for approval (see berth approvals)", verb, id)
		}
	}
	if err := c.Answer(cmd.Context(), id, approve); err != nil {
		return fmt.Errorf("%s %s: %w", verb, id, err)
	}
	return nil
}

func (a *app) auditCmd() *cobra.Command {
	var (
		sandboxRef, since, output, file, tenant string
		limit                                   int
		local                                   bool
	)
	cmd := &cobra.Command{
		Use:   "audit [--sandbox ID] [--since D] [--limit N] [--local | --file PATH] [--tenant NAME] [-o json]",
		Short: "Show the audit trail of berth serve: the commands and file changes agents asked for, their risk and the policy's decision",
		Long: "Show the audit trail kept by berth serve (see docs/security.md), for the tenant of BERTH_TOKEN.\n" +
			"It asks the server of --host / BERTH_HOST, else the [server] addr of berth.toml, else " + server.DefaultAddr + ".\n" +
			"--tenant NAME asks for that tenant's records instead, --tenant '*' for every tenant's: the server\n" +
			"answers them only to an admin tenant (admin = true in [[server.tenants]]; the local tenant without tokens).\n" +
			"--local reads the trail file itself (security.audit_file of berth.toml, else audit.jsonl in the state dir),\n" +
			"--file PATH another one: no server needed, every tenant's records, --tenant to pick one.\n" +
			"--since is a duration back from now (1h, 30m) or an RFC 3339 time.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if limit < 0 {
				return fmt.Errorf("invalid --limit %d: want a positive number", limit)
			}
			var sinceT time.Time
			if since != "" {
				t, err := parseSinceFlag(since, time.Now())
				if err != nil {
					return err
				}
				sinceT = t
			}
			if local && file == "" {
				file = a.cfg.Security.AuditPath(a.stateDir)
			}
			var recs []berthclient.AuditRecord
			if file != "" {
				var err error
				if recs, err = readTrail(file, tenant, sandboxRef, sinceT, limit); err != nil {
					return err
				}
			} else {
				c, err := a.serverClient()
				if err != nil {
					return err
				}
				if recs, err = c.Audit(cmd.Context(), berthclient.AuditOptions{Sandbox: sandboxRef, Limit: limit, Since: sinceT, Tenant: tenant}); err != nil {
					return fmt.Errorf("audit: %w", err)
				}
			}
			if output == "json" {
				return writeJSON(a.stdout, recs)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSANDBOX\tACTION\tLEVEL\tDECISION\tEXIT\tRULES\tWHAT")
			for _, r := range recs {
				exit := "-"
				if r.ExitCode != nil {
					exit = strconv.Itoa(*r.ExitCode)
				} else if r.Status != 0 {
					exit = "http " + strconv.Itoa(r.Status) // the agent refused the call
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format(time.DateTime), auditShortID(r.Sandbox),
					r.Action, dash(r.Level), r.Decision, exit, dash(strings.Join(r.Rules, ",")), auditLine(r.What, 80))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&sandboxRef, "sandbox", "", "only this sandbox (its id, or the prefix or name of a live one)")
	f.StringVar(&since, "since", "", "only records since: a duration back from now (1h) or an RFC 3339 time")
	f.IntVar(&limit, "limit", 0, "only the newest N records (default: the server's, 1000)")
	f.StringVarP(&output, "output", "o", "", "output format: json")
	f.BoolVar(&local, "local", false, "read the trail file of berth.toml's [security] here, not through a server")
	f.StringVar(&file, "file", "", "read this trail file, not through a server")
	f.StringVar(&tenant, "tenant", "", "this tenant's records (* = every tenant's; through a server, admin tenants only)")
	cmd.MarkFlagsMutuallyExclusive("local", "file")
	return cmd
}

// readTrail reads the trail file path: the records of tenant (all when
// empty or "*") and of the sandbox whose id starts with sandboxRef, since
// since, the newest limit of them.
func readTrail(path, tenant, sandboxRef string, since time.Time, limit int) ([]berthclient.AuditRecord, error) {
	if tenant == berthclient.AuditAllTenants {
		tenant = ""
	}
	recs, err := audit.ReadFile(path, audit.Query{Tenant: tenant, Since: since}, nil)
	if err != nil {
		return nil, err
	}
	if sandboxRef != "" {
		kept := recs[:0]
		for _, r := range recs {
			if strings.HasPrefix(r.Sandbox, sandboxRef) {
				kept = append(kept, r)
			}
		}
		recs = kept
	}
	if limit > 0 && len(recs) > limit {
		recs = recs[len(recs)-limit:]
	}
	if recs == nil {
		recs = []berthclient.AuditRecord{}
	}
	return recs, nil
}

// parseSinceFlag reads --since: a duration back from now, or an RFC 3339 time.
func parseSinceFlag(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid --since %q: want a duration such as 1h, or an RFC 3339 time", v)
	}
	return t, nil
}

func auditShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// auditLine shows text on one line of at most n runes.
func auditLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

package agentapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// SetMeta gives the agent what its sandbox's caller asked for (see
// PathMeta). It must be the first keyed call to the agent.
func (c *Client) SetMeta(ctx context.Context, req MetaRequest) (MetaResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return MetaResponse{}, fmt.Errorf("agent meta: encode request: %w", err)
	}
	var out MetaResponse
	if err := c.callJSON(ctx, http.MethodPost, PathMeta, body, &out); err != nil {
		return MetaResponse{}, err
	}
	return out, nil
}

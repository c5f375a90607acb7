package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/owl-project/owl/internal/lambdawire"
)

type (
	// AliasConfiguration is an alias as the API returns it.
	AliasConfiguration = lambdawire.AliasConfiguration
	// RoutingConfig sends a share of an alias's invocations to another version.
	RoutingConfig = lambdawire.RoutingConfig
)

// AliasInput is the body of CreateAlias and UpdateAlias. A nil RoutingConfig leaves the routing
// as it is on update; an empty one removes it.
type AliasInput struct {
	Name            string         `json:"Name,omitempty"`
	FunctionVersion string         `json:"FunctionVersion,omitempty"`
	Description     *string        `json:"Description,omitempty"`
	RoutingConfig   *RoutingConfig `json:"RoutingConfig,omitempty"`
}

// PublishVersion freezes a function's $LATEST as a new version (PublishVersion, 201); when
// nothing changed since the newest version, that version is returned.
func (c *Client) PublishVersion(ctx context.Context, name, description string) (*FunctionConfiguration, error) {
	in := struct {
		Description string `json:"Description,omitempty"`
	}{description}
	var out FunctionConfiguration
	if err := c.doJSON(ctx, http.MethodPost, functionPath(name, "/versions"), nil, &in, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListVersions returns $LATEST and every published version, following every page.
func (c *Client) ListVersions(ctx context.Context, name string) ([]FunctionConfiguration, error) {
	return listAll(ctx, c, functionPath(name, "/versions"), func(p *lambdawire.VersionList) ([]FunctionConfiguration, *string) {
		return p.Versions, p.NextMarker
	})
}

// ListAliases returns a function's aliases, following every page.
func (c *Client) ListAliases(ctx context.Context, name string) ([]AliasConfiguration, error) {
	return listAll(ctx, c, functionPath(name, "/aliases"), func(p *lambdawire.AliasList) ([]AliasConfiguration, *string) {
		return p.Aliases, p.NextMarker
	})
}

// listAll GETs path page by page, each decoded into a P (one of
// lambdawire's lists), and returns the items of every page; items says
// what a page holds and its NextMarker.
func listAll[P, T any](ctx context.Context, c *Client, path string, items func(*P) ([]T, *string)) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	marker := ""
	for {
		q := url.Values{"MaxItems": {strconv.Itoa(listPageSize)}}
		if marker != "" {
			q.Set("Marker", marker)
		}
		var page P
		if err := c.doJSON(ctx, http.MethodGet, path, q, nil, nil, &page); err != nil {
			return nil, err
		}
		got, next := items(&page)
		all = append(all, got...)
		if next == nil || *next == "" {
			return all, nil
		}
		// A server that hands out a marker twice would keep us here forever.
		if seen[*next] {
			return nil, fmt.Errorf("listing %s: the server repeated page marker %q", path, *next)
		}
		seen[*next] = true
		marker = *next
	}
}

// CreateAlias creates an alias (CreateAlias, 201).
func (c *Client) CreateAlias(ctx context.Context, function string, in *AliasInput) (*AliasConfiguration, error) {
	var out AliasConfiguration
	if err := c.doJSON(ctx, http.MethodPost, functionPath(function, "/aliases"), nil, in, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateAlias changes an alias (UpdateAlias).
func (c *Client) UpdateAlias(ctx context.Context, function, alias string, in *AliasInput) (*AliasConfiguration, error) {
	var out AliasConfiguration
	body := *in
	body.Name = ""
	if err := c.doJSON(ctx, http.MethodPut, functionPath(function, "/aliases/"+url.PathEscape(alias)), nil, &body, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteAlias deletes an alias (DeleteAlias, 204).
func (c *Client) DeleteAlias(ctx context.Context, function, alias string) error {
	return c.doJSON(ctx, http.MethodDelete, functionPath(function, "/aliases/"+url.PathEscape(alias)), nil, nil, nil, nil)
}

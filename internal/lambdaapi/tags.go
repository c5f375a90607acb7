package lambdaapi

import (
	"encoding/json"
	"net/http"
	"regexp"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// Tags (TagResource, UntagResource, ListTags under /2017-03-31/tags/ARN):
// a function's tags, named by its unqualified ARN; stored with the
// function (registry/tags.go).

// taggableARN is Lambda's pattern of a resource ARN in the tagging API.
var taggableARN = regexp.MustCompile(`^arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?$`)

// taggedFunction is the function the request's {arn} names: its ARN must
// be one of this installation's unqualified function ARNs.
func (a *API) taggedFunction(r *http.Request) (string, error) {
	arn := r.PathValue("arn")
	if !taggableARN.MatchString(arn) {
		return "", lambdaerr.ValidationFailed(arn, "resource", "Member must satisfy regular expression pattern: "+taggableARN.String())
	}
	name, q, err := registry.ParseName(arn)
	if err != nil {
		return "", err
	}
	if q != "" {
		return "", lambdaerr.New(lambdaerr.InvalidParameterValue, "Tags apply to a function, not to a version or alias: use the unqualified ARN %s.", a.reg.ARN(name, ""))
	}
	if arn != a.reg.ARN(name, "") { // another region or account
		return "", lambdaerr.New(lambdaerr.ResourceNotFound, "Function not found: %s", arn)
	}
	return name, nil
}

func (a *API) tagResource(w http.ResponseWriter, r *http.Request, body []byte) error {
	name, err := a.taggedFunction(r)
	if err != nil {
		return err
	}
	var in struct {
		Tags map[string]string `json:"Tags"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return lambdaerr.New(lambdaerr.InvalidRequestContent, "Could not parse request body into json: %v", err)
	}
	if in.Tags == nil {
		return lambdaerr.ValidationFailed("null", "tags", "Member must not be null")
	}
	if err := a.reg.TagFunction(r.Context(), name, in.Tags); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) untagResource(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := a.taggedFunction(r)
	if err != nil {
		return err
	}
	keys := r.URL.Query()["tagKeys"]
	if len(keys) == 0 {
		return lambdaerr.ValidationFailed("null", "tagKeys", "Member must not be null")
	}
	if err := a.reg.UntagFunction(r.Context(), name, keys); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listTags(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := a.taggedFunction(r)
	if err != nil {
		return err
	}
	tags, err := a.reg.Tags(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]map[string]string{"Tags": tags})
	return nil
}

// tagsRoute is the path of the tagging operations.
const tagsRoute = "/2017-03-31/tags/{arn}"

package lambdawire

// Function URLs (2021-10-31): Create/Get/Update/DeleteFunctionUrlConfig
// and ListFunctionUrlConfigs.

// Cors is a function URL's CORS settings, as Lambda's API writes them.
type Cors struct {
	AllowCredentials *bool    `json:"AllowCredentials,omitempty"`
	AllowHeaders     []string `json:"AllowHeaders,omitempty"`
	AllowMethods     []string `json:"AllowMethods,omitempty"`
	AllowOrigins     []string `json:"AllowOrigins,omitempty"`
	ExposeHeaders    []string `json:"ExposeHeaders,omitempty"`
	MaxAge           *int     `json:"MaxAge,omitempty"`
}

// FunctionURLConfigInput is the body of Create and Update.
type FunctionURLConfigInput struct {
	AuthType   *string `json:"AuthType,omitempty"`
	Cors       *Cors   `json:"Cors,omitempty"`
	InvokeMode *string `json:"InvokeMode,omitempty"`
}

// FunctionURLConfig is a function URL as the API returns it.
type FunctionURLConfig struct {
	FunctionUrl      string `json:"FunctionUrl"`
	FunctionArn      string `json:"FunctionArn"`
	AuthType         string `json:"AuthType"`
	Cors             *Cors  `json:"Cors,omitempty"`
	CreationTime     string `json:"CreationTime"`
	LastModifiedTime string `json:"LastModifiedTime,omitempty"`
	InvokeMode       string `json:"InvokeMode"`
}

// FunctionURLConfigList is ListFunctionUrlConfigs' answer.
type FunctionURLConfigList struct {
	FunctionUrlConfigs []FunctionURLConfig `json:"FunctionUrlConfigs"`
	NextMarker         *string             `json:"NextMarker,omitempty"`
}

// RouteInput adds a route to Owl's HTTP API (POST /owl/v1/routes).
type RouteInput struct {
	// RouteKey is "METHOD /path" (path parameters {name}, a greedy last
	// {name+}; METHOD ANY for all) or "$default".
	RouteKey string `json:"RouteKey"`
	// Function is a name, name:qualifier or function ARN.
	Function string `json:"Function"`
	AuthType string `json:"AuthType,omitempty"` // NONE (default) or AWS_IAM
}

// Route is one route of Owl's HTTP API.
type Route struct {
	ID        string `json:"Id"`
	RouteKey  string `json:"RouteKey"`
	Function  string `json:"Function"`
	AuthType  string `json:"AuthType"`
	CreatedAt string `json:"CreatedAt"`
}

// RouteList is GET /owl/v1/routes.
type RouteList struct {
	Routes []Route `json:"Routes"`
}

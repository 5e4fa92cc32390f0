// Package v20170312 stands in for Tencent Cloud's VPC API client, which flannel's tencent-vpc
// backend imports and which the Go module proxy netconform builds from does not serve. It has
// the names that backend uses and nothing else; every call fails, so a flanneld built with it
// refuses the tencent-vpc backend at start-up and works as upstream's with every other backend.
package v20170312

import "errors"

var errNotBuiltIn = errors.New("the Tencent Cloud VPC client is not built into this flanneld " +
	"(netconform builds it without that SDK, which its Go module proxy does not serve)")

type Filter struct {
	Name   *string
	Values []*string
}

type Route struct {
	DestinationCidrBlock *string
	GatewayType          *string
	GatewayId            *string
	RouteType            *string
	RouteId              *uint64
	Enabled              *bool
}

type RouteTable struct {
	RouteTableId *string
	RouteSet     []*Route
}

type DescribeRouteTablesRequest struct{ Filters []*Filter }

type DescribeRouteTablesResponseParams struct{ RouteTableSet []*RouteTable }

type DescribeRouteTablesResponse struct{ Response *DescribeRouteTablesResponseParams }

type DeleteRoutesRequest struct {
	RouteTableId *string
	Routes       []*Route
}

type DeleteRoutesResponse struct{}

type CreateRoutesRequest struct {
	RouteTableId *string
	Routes       []*Route
}

type CreateRoutesResponse struct{}

type Client struct{}

func NewClientWithSecretId(secretId, secretKey, region string) (*Client, error) {
	return nil, errNotBuiltIn
}

func NewDescribeRouteTablesRequest() *DescribeRouteTablesRequest { return &DescribeRouteTablesRequest{} }
func NewDeleteRoutesRequest() *DeleteRoutesRequest              { return &DeleteRoutesRequest{} }
func NewCreateRoutesRequest() *CreateRoutesRequest              { return &CreateRoutesRequest{} }

func (c *Client) DescribeRouteTables(*DescribeRouteTablesRequest) (*DescribeRouteTablesResponse, error) {
	return nil, errNotBuiltIn
}

func (c *Client) DeleteRoutes(*DeleteRoutesRequest) (*DeleteRoutesResponse, error) {
	return nil, errNotBuiltIn
}

func (c *Client) CreateRoutes(*CreateRoutesRequest) (*CreateRoutesResponse, error) {
	return nil, errNotBuiltIn
}

// A stand-in for Tencent Cloud's VPC client (see v20170312/stub.go): the Go module proxy here does
// not serve github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc at any version.
module github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc

go 1.21

"""HTTP routers: ranking and events under /v1, model info, and operational endpoints."""

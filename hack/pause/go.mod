module modelramp.dev/hack/pause

go 1.24.0

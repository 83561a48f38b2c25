package transfer_test

import "runtime"

func runtimeGosched() { runtime.Gosched() }

// Package examples holds trainers that keep baton's contract: trainer.py
// (standard library only; the end-to-end tests and the demo run it) and one
// example each for a plain PyTorch loop, the Hugging Face Trainer and PyTorch
// Lightning. Its test compiles every example with python3, since PyTorch is
// not installed where the tests run. It has no Go code of its own.
package examples

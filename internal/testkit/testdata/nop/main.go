// Command nop does nothing: TestBuild builds it.
package main

func main() {}

"""SpaceHub's benchmark: the relay against the wire's floor and Gradio's queue (see README.md)."""

"""redstep's Lambda role: the function registry, the RQ job that runs tasks, the dragon functions."""

"""redstep's hub: the pure ASL core (``orchestrator.asl``) and the Redis runtime around it."""

"""What the orchestrator and the workers share."""

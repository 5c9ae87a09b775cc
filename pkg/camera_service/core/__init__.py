"""What every part of the service shares: the component lifecycle and the event bus."""

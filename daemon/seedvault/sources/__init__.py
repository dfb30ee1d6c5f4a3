"""Sources: the things seedvault watches and captures (local dirs, hubs, provider APIs)."""

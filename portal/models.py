"""The portal owns no tables of its own; pages render the other apps' models through their selectors."""

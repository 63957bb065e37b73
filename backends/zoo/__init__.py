"""Small re-implementations of upstream modules whose packages cannot be imported here (they pull
torchvision or other heavy dependencies). Each loads the upstream's shipped weights unchanged."""

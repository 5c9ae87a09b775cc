"""Load generator for the camera service (picows client, loopback only). See bench/README.md."""

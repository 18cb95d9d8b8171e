"""Certified exports: planning, the bag, the certificate, the build lifecycle."""

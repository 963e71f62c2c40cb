"""API routers, one per concern; create_app includes them all."""

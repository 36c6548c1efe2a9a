"""The download API and the overview page: a WSGI application and its small server."""

"""callroute-web: the HTTP JSON API (and, later, the pages). Never imported by the call path."""

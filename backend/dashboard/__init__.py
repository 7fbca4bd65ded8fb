"""The Control Center: the operators' page the app serves at ``/``, a client of the public API only.

``static/`` holds the page as it is served (native ES modules, no build step); ``assets.py``
loads it once, ``routes.py`` serves it with a strict Content-Security-Policy.
"""

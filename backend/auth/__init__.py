"""Users, passwords, JWT login and the role guard."""

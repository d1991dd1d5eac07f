"""`serbero audit`: read-only queries over the shared database and their table/JSON/CSV renderings."""

"""The dashboard's page, script and style sheet (package data; see ``..dashboard``)."""

"""Reading and writing slewdark's files."""

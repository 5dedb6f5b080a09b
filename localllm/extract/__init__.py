"""Extraction of entities or a schema's fields from documents: valid by grammar, grounded in
the source, merged across parts."""

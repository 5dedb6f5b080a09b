"""Documents as text: the readers (text, Markdown, HTML, PDF, stdin) and the token-exact
chunker, shared by summarize, translate, extract and ask."""

"""Translation of whole documents of any length, their structure kept."""

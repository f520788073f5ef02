
#compdef vsuite

_vsuite_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _VSUITE_COMPLETE=complete_zsh vsuite)
}

compdef _vsuite_completion vsuite


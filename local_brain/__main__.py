from local_brain.cli import main

main()

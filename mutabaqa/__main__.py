from mutabaqa.cli import main

main()

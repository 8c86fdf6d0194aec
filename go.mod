module github.com/codemachine/codemachine

go 1.26.0
